# Out-of-range configuration stops the driver at start-up (2 ranks) with the key, the value,
# the valid range and where the value came from (the command line or the file); metrics that
# cannot be written (a full disk: /dev/full) stop the run with the OS's reason.
include(${SRC}/common.cmake)

run_driver_fails(refused_no_stall_timeout dist.stall_timeout_s=0 --print-config
                 EXPECT "'dist.stall_timeout_s' from the command line \\(dist.stall_timeout_s=0\\) is 0; it must be >= 1")
run_driver_fails(refused_negative_checkpoint_period checkpoint.every_minutes=-1 --print-config
                 EXPECT "'checkpoint.every_minutes' from the command line \\(checkpoint.every_minutes=-1\\) is -1; it must be >= 0")
run_driver_fails(refused_zero_batch data.batch_size=0 --print-config
                 EXPECT "'data.batch_size' from the command line \\(data.batch_size=0\\) is 0; it must be >= 1")
run_driver_fails(refused_dropout_above_1 model.dropout=1.5 --print-config
                 EXPECT "'model.dropout' from the command line \\(model.dropout=1.5\\) is 1.5; it must be between 0 and 0.99")

# A bad value in the file is blamed on the file, not on the command line.
file(WRITE ${WORK}/bad_bucket.yaml "dist:\n  bucket_mb: -1\n")
run_driver_fails(refused_negative_bucket_in_the_file --config ${WORK}/bad_bucket.yaml --print-config
                 EXPECT "'dist.bucket_mb' from ${WORK}/bad_bucket.yaml is -1; it must be between")

# Metrics to a full device: the run stops, naming the file and the cause.
run_driver_fails(refused_metrics_on_a_full_disk training.epochs=1 output.metrics=/dev/full
                 EXPECT "cannot write to the metrics file '/dev/full'" "No space left on device")
