# deepcam_learns on GPUs (training.device=cuda, one GPU per rank by node-local rank, NCCL
# allreduces, batches copied ahead on a copy stream): the training loss must fall and the
# same IoU bar be reached (on one rank where the machine has one GPU: run_on_gpus). Without a
# visible GPU (or in a build without CUDA or NCCL) the driver says so at start-up and the test
# is reported as skipped (HALO_TEST_SKIPPED).
include(${SRC}/common.cmake)
set(d ${WORK}/${NAME})
run_on_gpus(out ${d} training.device=cuda training.epochs=20 data.batch_size=8
            optimizer.name=lamb optimizer.lr=0.004 optimizer.warmup_steps=32 optimizer.schedule=multistep
            optimizer.milestones=[256] loss.class_weights=auto model.batchnorm_group_size=0
            output.metrics=${d}/metrics.jsonl)
if(out MATCHES "sees no CUDA GPU|without CUDA|without NCCL")
  message("HALO_TEST_SKIPPED: no CUDA GPU visible to the ranks, or a build without CUDA or NCCL")
  return()
endif()
run_python(${SUPPORT}/check_train_loss_falls.py ${d}/metrics.jsonl 0.9)
run_python(${SRC}/check_learning.py ${d}/metrics.jsonl)
