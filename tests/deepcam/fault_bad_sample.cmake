# A DeepCAM field with one NaN pixel (written by h5py) among good ones: data.on_bad_sample=error
# (the default) stops the run naming the rank, the file, 'climate/data' and the sample, before
# training (the class-weight count reads every label) and in training (explicit weights);
# skip replaces it, leaves it out of the class-weight count and counts it per epoch.
include(${SRC}/common.cmake)
set(d ${WORK}/fault_bad_sample)
file(REMOVE_RECURSE ${d})
file(MAKE_DIRECTORY ${d}/train)
file(GLOB _src ${WORK}/data64/train/deepcam-0000*.h5 ${WORK}/data64/train/stats.h5)  # 10 fields
file(COPY ${_src} DESTINATION ${d}/train)
run_python(${SUPPORT}/fault_tools.py poison ${d}/train/deepcam-00003.h5 deepcam-nan)
set(SMALL data.train=${d}/train data.validation= model.channel_scale=0.0625 model.middle_blocks=1
    output.progress_style=plain output.progress_interval_s=30 training.target_iou=0 data.batch_size=2
    checkpoint.path=)
set(BAD "file [^,]*deepcam-00003\\.h5, dataset 'climate/data', sample 3: 1 NaN or infinite value")

run_driver_fails(nan_class_weights training.epochs=1 EXPECT "rank [01]\\] error: [^\n]*${BAD}")
run_driver_fails(nan_training training.epochs=1 loss.class_weights=[1,1,1] EXPECT "rank [01]: ${BAD}")
run_driver(skip training.epochs=2 data.on_bad_sample=skip output.metrics=${d}/skip.jsonl)
expect_in_log(skip "skipping bad sample[^\n]*${BAD}" "epoch 2/2 [^\n]*bad samples 1")
run_python(${SUPPORT}/fault_tools.py metric ${d}/skip.jsonl skipped_samples 1 1)
