# Bad CosmoFlow samples written by h5py among good ones: a negative count in `x` and a NaN
# target in `y`. data.on_bad_sample=error (the default) stops the run naming the rank, the
# file, the dataset, the sample and what is wrong; skip replaces them (every rank keeps its
# number of steps) and counts them in the progress line and the metrics file.
include(${SRC}/common.cmake)
set(d ${WORK}/fault_bad_sample)
file(REMOVE_RECURSE ${d})
foreach(s negative nan_y both)
  file(MAKE_DIRECTORY ${d}/${s})
  file(GLOB _src ${WORK}/data16/train/cosmo-0000*.h5 ${WORK}/data16/train/cosmo-0001*.h5)  # 20 samples
  file(COPY ${_src} DESTINATION ${d}/${s})
endforeach()
foreach(p negative/cosmo-00005.h5:x-negative nan_y/cosmo-00013.h5:y-nan both/cosmo-00005.h5:x-negative
          both/cosmo-00013.h5:y-nan)
  string(REPLACE ":" ";" p ${p})
  list(GET p 0 f)
  list(GET p 1 kind)
  run_python(${SUPPORT}/fault_tools.py poison ${d}/${f} ${kind})
endforeach()
set(COMMON model.input_size=16 model.conv_layers=4 model.base_filters=8 model.dense=[32,16]
    output.progress_style=plain output.progress_interval_s=30 training.target_mae=0 data.batch_size=4
    training.epochs=2)

set(SMALL data.train=${d}/negative data.validation= ${COMMON})
run_driver_fails(negative EXPECT "rank [01]: file [^,]*negative/cosmo-00005\\.h5, dataset 'x', sample 5: 1 negative count")
set(SMALL data.train=${d}/nan_y data.validation= ${COMMON})
run_driver_fails(nan_y EXPECT "rank [01]: file [^,]*nan_y/cosmo-00013\\.h5, dataset 'y', sample 13: 1 NaN or infinite target")

# skip: both bad samples in training, the NaN target also in validation
set(SMALL data.train=${d}/both data.validation=${d}/nan_y ${COMMON} data.on_bad_sample=skip output.metrics=${d}/skip.jsonl)
run_driver(skip)
expect_in_log(skip "skipping bad sample[^\n]*cosmo-00005\\.h5, dataset 'x', sample 5"
              "skipping bad sample[^\n]*cosmo-00013\\.h5, dataset 'y', sample 13" "step 5/5 [^\n]*bad samples 2"
              "epoch 2/2 [^\n]*bad samples 2  bad validation samples 1")
run_python(${SUPPORT}/fault_tools.py metric ${d}/skip.jsonl skipped_samples 2 2)
run_python(${SUPPORT}/fault_tools.py metric ${d}/skip.jsonl val_skipped_samples 1 1)
run_python(${SUPPORT}/fault_tools.py metric ${d}/skip.jsonl skipped_steps 0 0)
run_python(${SUPPORT}/fault_tools.py metric ${d}/skip.jsonl train_samples 20 20)
