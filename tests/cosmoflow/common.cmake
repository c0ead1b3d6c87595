# The small CosmoFlow model of the end-to-end tests (16^3 volumes, 4 convolutions).
set(SMALL data.train=${WORK}/data16/train data.validation=${WORK}/data16/validation model.input_size=16
    model.conv_layers=4 model.base_filters=8 model.dense=[32,16] output.progress_style=plain
    output.progress_interval_s=30 training.target_mae=0)
include(${SUPPORT}/driver_run.cmake)
