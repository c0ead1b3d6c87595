# output.mllog: a one-epoch run writes an MLPerf log that MLPerf's own compliance checker
# (HPC ruleset 3.0.0, closed DeepCAM with LAMB and multistep) accepts but for the target IoU
# and the data set sizes (the closed rules want the real 121266 / 15158 samples, the test
# has 128 / 16); the LAMB and schedule keys are the ones used, in the reference's terms (a
# warmup from 0.0005 to 0.001 is opt_lr 0.0005 with warmup factor 2). Skipped
# (HALO_TEST_SKIPPED) when ${PYTHON} cannot import mlperf_logging.
include(${SRC}/common.cmake)
set(d ${WORK}/mllog)
file(REMOVE_RECURSE ${d})
file(MAKE_DIRECTORY ${d})
run_driver(mllog training.epochs=1 data.batch_size=8 checkpoint.path= training.seed=3 optimizer.clip_grad_norm=1
           optimizer.lr=0.001 optimizer.warmup_steps=4 optimizer.warmup_start_lr=0.0005 optimizer.milestones=[10,12]
           optimizer.gamma=0.5 model.batchnorm_group_size=-1 output.mllog=${d}/deepcam.mllog)
expect_in_log(mllog "time to train: [0-9.]+ s \\(run_start to run_stop")
run_python(${SUPPORT}/check_mllog.py ${d}/deepcam.mllog --status aborted
           --allow "Failed checks for eval_accuracy : v\\['value'\\] >= 0.82"
           --allow "CHECK for 'train_samples' failed[^\n]*\n[^\n]*\"value\":128[,}].*failed test:  v\\['value'\\] == 121266"
           --allow "CHECK for 'eval_samples' failed[^\n]*\n[^\n]*\"value\":16[,}].*failed test:  v\\['value'\\] == 15158"
           --expect submission_benchmark="deepcam" --expect seed=3 --expect global_batch_size=8
           --expect opt_name="LAMB" --expect opt_lr=0.0005 --expect scheduler_lr_warmup_factor=2.0
           --expect scheduler_lr_warmup_steps=4 --expect scheduler_milestones=[10,12] --expect scheduler_decay_rate=0.5
           --expect opt_max_grad_norm=1.0 --expect opt_eps=1e-06 --expect opt_betas=[0.9,0.999]
           --expect batchnorm_group_size=2 --count epoch_start=1 --count eval_accuracy=1)
