# Divergence (optimizer.base_lr=1e8): with training.on_nonfinite=stop (the default) the run
# stops non-zero naming the epoch, the step and the files of the batch, and the previous
# checkpoint keeps its bytes (and is finite); with skip the steps are skipped on every rank
# and counted (progress line, metrics file); a model state that did turn non-finite
# (base_lr=1e300: inf weights after one step) is never written over the last checkpoint.
include(${SRC}/common.cmake)
set(d ${WORK}/fault_divergence)
file(REMOVE_RECURSE ${d})
file(MAKE_DIRECTORY ${d}/train)
file(GLOB _src ${WORK}/data16/train/cosmo-0000*.h5 ${WORK}/data16/train/cosmo-0001*.h5)  # 20 samples
file(COPY ${_src} DESTINATION ${d}/train)
# 5 steps per epoch, no validation: seconds per run
set(SMALL data.train=${d}/train data.validation= model.input_size=16 model.conv_layers=4 model.base_filters=8
    model.dense=[32,16] output.progress_style=plain output.progress_interval_s=30 training.target_mae=0
    data.batch_size=4 optimizer.warmup_epochs=0)

run_driver(good training.epochs=1 checkpoint.path=${d}/ckpt.h5)
foreach(c stop skip refuse)
  execute_process(COMMAND ${CMAKE_COMMAND} -E copy ${d}/ckpt.h5 ${d}/${c}.h5)
endforeach()
set(DIVERGE training.epochs=2 --resume optimizer.base_lr=1e8)

run_driver_fails(stop ${DIVERGE} checkpoint.path=${d}/stop.h5
                 EXPECT "non-finite (loss|gradient)[^\n]* at epoch 2, step [1-5]/5" "this rank's batch: sample [0-9]+ \\(file [^)]*cosmo-000[0-9]+\\.h5"
                        "training.on_nonfinite=stop" "left as it was")
run_python(${SUPPORT}/fault_tools.py same ${d}/stop.h5 ${d}/ckpt.h5)
run_python(${SUPPORT}/fault_tools.py finite ${d}/stop.h5)

run_driver(skip ${DIVERGE} checkpoint.path=${d}/skip.h5 training.on_nonfinite=skip output.metrics=${d}/skip.jsonl)
expect_in_log(skip "step skipped" "step 5/5 [^\n]*skipped steps [1-5]")
run_python(${SUPPORT}/fault_tools.py metric ${d}/skip.jsonl skipped_steps 1 5)

run_driver_fails(refuse training.epochs=2 --resume optimizer.base_lr=1e300 checkpoint.path=${d}/refuse.h5
                 training.on_nonfinite=skip EXPECT "refusing to write checkpoint [^\n]*NaN or infinite" "left as it was")
run_python(${SUPPORT}/fault_tools.py same ${d}/refuse.h5 ${d}/ckpt.h5)
