# The very small DeepLabv3+ of the end-to-end tests (64x96 fields, channel_scale 0.0625).
set(SMALL data.train=${WORK}/data64/train data.validation=${WORK}/data64/validation model.channel_scale=0.0625
    model.middle_blocks=1 output.progress_style=plain output.progress_interval_s=30 training.target_iou=0)
include(${SUPPORT}/driver_run.cmake)
