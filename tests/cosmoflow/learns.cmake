# Learning, not just running: after a few epochs on 256 volumes of 16^3 the validation MAE
# must be well below the MAE of predicting the mean of the targets (0 for the generated
# data, whose targets are spread evenly over [-1, 1]).
include(${SRC}/common.cmake)
set(d ${WORK}/learns)
file(REMOVE_RECURSE ${d})
file(MAKE_DIRECTORY ${d})
run_driver(learns training.epochs=16 data.batch_size=8 model.dropout=0 optimizer.warmup_epochs=1
           optimizer.base_lr=0.08 optimizer.decay_epochs=[10,14] checkpoint.path= output.metrics=${d}/metrics.jsonl)
run_python(${SRC}/check_learning.py ${d}/metrics.jsonl 0.75)
