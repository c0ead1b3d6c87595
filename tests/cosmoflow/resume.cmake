# Interrupt and resume must change nothing: the final checkpoint of an uninterrupted run and
# of runs stopped (mid-epoch, then at an epoch boundary) and resumed hold the same bits.
# The same with dynamic loss scaling started far too high (2^140: the first steps overflow and
# are skipped while the scale backs off) and a short growth interval, so the scaler's state
# must travel through the checkpoint too.
include(${SRC}/common.cmake)
set(d ${WORK}/resume)
file(REMOVE_RECURSE ${d})
file(MAKE_DIRECTORY ${d})
# 256 samples, global batch 8: 32 steps per epoch, 3 epochs; dropout on, so its positions count.
set(RUN training.epochs=3 data.batch_size=8 model.dropout=0.5 optimizer.warmup_epochs=1 optimizer.base_lr=0.05
    optimizer.decay_epochs=[2] optimizer.decay_factors=[0.5] optimizer.weight_decay=0.0001)

run_driver(uninterrupted ${RUN} checkpoint.path=${d}/full.h5 output.metrics=${d}/full.jsonl)

# Stopped mid-epoch 2 (step 43 = epoch 2, step 11), resumed, stopped again at the end of
# epoch 2 (step 64), resumed to the end.
run_driver(part1 ${RUN} checkpoint.path=${d}/parts.h5 --stop-after-steps 43 output.metrics=${d}/parts.jsonl)
execute_process(COMMAND ${CMAKE_COMMAND} -E copy ${d}/parts.h5 ${d}/interrupted.h5)
run_driver(part2 ${RUN} checkpoint.path=${d}/parts.h5 --resume --stop-after-steps 64 output.metrics=${d}/parts.jsonl)
run_driver(part3 ${RUN} checkpoint.path=${d}/parts.h5 --resume output.metrics=${d}/parts.jsonl)

run_python(${SRC}/compare_checkpoints.py ${d}/full.h5 ${d}/parts.h5 --differs ${d}/interrupted.h5
           --metrics ${d}/full.jsonl ${d}/parts.jsonl)

# Loss scaling: uninterrupted vs stopped mid-epoch and resumed.
set(SCALED ${RUN} training.loss_scaling=true training.loss_scale_init=1.3937965749081639e42
    training.loss_scale_max=1.3937965749081639e42 training.loss_scale_growth_interval=5)
run_driver(scaled_full ${SCALED} checkpoint.path=${d}/scaled_full.h5 output.metrics=${d}/scaled_full.jsonl)
run_driver(scaled_part1 ${SCALED} checkpoint.path=${d}/scaled_parts.h5 --stop-after-steps 43
           output.metrics=${d}/scaled_parts.jsonl)
run_driver(scaled_part2 ${SCALED} checkpoint.path=${d}/scaled_parts.h5 --resume output.metrics=${d}/scaled_parts.jsonl)
run_python(${SRC}/compare_checkpoints.py ${d}/scaled_full.h5 ${d}/scaled_parts.h5
           --metrics ${d}/scaled_full.jsonl ${d}/scaled_parts.jsonl)
run_python(${SRC}/check_loss_scaler.py ${d}/scaled_full.h5 1.3937965749081639e42)
