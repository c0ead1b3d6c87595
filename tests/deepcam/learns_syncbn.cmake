# The same recipe with BatchNorm statistics summed over both ranks, the class weights given
# (MLPerf's) instead of counted, and global-norm clipping.
include(${SRC}/common.cmake)
set(d ${WORK}/${NAME})
file(REMOVE_RECURSE ${d})
file(MAKE_DIRECTORY ${d})
run_driver(${NAME} checkpoint.path= training.epochs=20 data.batch_size=8 optimizer.name=lamb optimizer.lr=0.004
           optimizer.warmup_steps=32 optimizer.schedule=multistep optimizer.milestones=[256]
           optimizer.clip_grad_norm=5 loss.class_weights=[1.0017,2.6146,1.7164] model.batchnorm_group_size=-1
           output.metrics=${d}/metrics.jsonl)
run_python(${SRC}/check_learning.py ${d}/metrics.jsonl)
