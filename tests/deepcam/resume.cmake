# Interrupt and resume change nothing for DeepCAM either (LAMB moments, BatchNorm running
# statistics, the schedule position): the final checkpoint of an uninterrupted run and of a run
# stopped mid-epoch and resumed hold the same bits, read by layer name with h5py.
include(${SRC}/common.cmake)
set(d ${WORK}/${NAME})
file(REMOVE_RECURSE ${d})
file(MAKE_DIRECTORY ${d})
# 128 samples, global batch 8: 16 steps per epoch, 2 epochs; stopped at step 21 (epoch 2).
set(RUN training.epochs=2 data.batch_size=8 optimizer.name=lamb optimizer.lr=0.004 optimizer.warmup_steps=8
    optimizer.schedule=multistep optimizer.milestones=[24] loss.class_weights=[1.0017,2.6146,1.7164])
run_driver(full ${RUN} checkpoint.path=${d}/full.h5 output.metrics=${d}/full.jsonl)
run_driver(part1 ${RUN} checkpoint.path=${d}/parts.h5 --stop-after-steps 21 output.metrics=${d}/parts.jsonl)
execute_process(COMMAND ${CMAKE_COMMAND} -E copy ${d}/parts.h5 ${d}/interrupted.h5)
run_driver(part2 ${RUN} checkpoint.path=${d}/parts.h5 --resume output.metrics=${d}/parts.jsonl)
run_python(${SRC}/../cosmoflow/compare_checkpoints.py ${d}/full.h5 ${d}/parts.h5 --differs ${d}/interrupted.h5
           --metrics ${d}/full.jsonl ${d}/parts.jsonl --param entry.conv1/weight --no-dropout)
