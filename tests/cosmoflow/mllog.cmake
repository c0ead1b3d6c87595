# output.mllog: a short staged run writes an MLPerf log that MLPerf's own compliance checker
# (mlperf_logging, HPC ruleset 3.0.0) accepts but for the target MAE, which 2 epochs on
# generated data never reach; the logged hyperparameters are the ones used; staging sits
# between init_stop and run_start; the driver prints the time to train. A second run whose
# target is reached after epoch 1 ends with run_stop status success after 1 epoch.
# Skipped (HALO_TEST_SKIPPED) when ${PYTHON} cannot import mlperf_logging.
include(${SRC}/common.cmake)
set(d ${WORK}/mllog)
file(REMOVE_RECURSE ${d})
file(MAKE_DIRECTORY ${d})
set(allow --allow "Failed checks for eval_error : v\\['value'\\] <= 0.124")
run_driver(mllog training.epochs=2 data.batch_size=8 data.staging=memory checkpoint.path=
           output.mllog=${d}/aborted.mllog mlperf.org=HaloTest mlperf.platform=ci optimizer.decay_epochs=[1.5]
           optimizer.decay_factors=[0.5] optimizer.warmup_epochs=1 optimizer.weight_decay=0.0001 model.dropout=0.25)
expect_in_log(mllog "time to train: [0-9.]+ s \\(run_start to run_stop[^)]*staging [0-9.]+ s excluded\\); wall time [0-9.]+ s")
run_python(${SUPPORT}/check_mllog.py ${d}/aborted.mllog ${allow} --status aborted
           --expect submission_benchmark="cosmoflow" --expect submission_org="HaloTest" --expect submission_platform="ci"
           --expect submission_division="closed" --expect global_batch_size=8 --expect train_samples=256
           --expect eval_samples=32 --expect opt_name="sgd" --expect opt_base_learning_rate=0.001
           --expect opt_learning_rate_warmup_factor=0.125 --expect opt_learning_rate_decay_boundary_epochs=[1.5]
           --expect opt_learning_rate_decay_factor=[0.5] --expect dropout=0.25 --expect opt_weight_decay=0.0001
           --count epoch_start=2 --count epoch_stop=2 --count eval_error=2 --count staging_start=1
           --count staging_stop=1 --count run_start=1)
# training.target_mae above any MAE: reached after the first epoch (SMALL's target_mae=0,
# which would come last and win, goes).
list(REMOVE_ITEM SMALL training.target_mae=0)
run_driver(mllog_success training.epochs=3 training.target_mae=10 checkpoint.path= output.mllog=${d}/success.mllog)
run_python(${SUPPORT}/check_mllog.py ${d}/success.mllog ${allow} --status success --count epoch_start=1 --count eval_error=1
           --count staging_start=0)
