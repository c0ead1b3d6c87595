# Learning, not just running: 20 epochs of 16 steps on 128 fields of 64x96 (LAMB, warmup
# then a x0.1 step, class weights counted from the training labels over both ranks).
include(${SRC}/common.cmake)
set(d ${WORK}/${NAME})
file(REMOVE_RECURSE ${d})
file(MAKE_DIRECTORY ${d})
run_driver(${NAME} checkpoint.path= training.epochs=20 data.batch_size=8 optimizer.name=lamb optimizer.lr=0.004
           optimizer.warmup_steps=32 optimizer.schedule=multistep optimizer.milestones=[256]
           loss.class_weights=auto model.batchnorm_group_size=0 output.metrics=${d}/metrics.jsonl)
run_python(${SRC}/check_learning.py ${d}/metrics.jsonl)
