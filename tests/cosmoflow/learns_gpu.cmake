# cosmoflow_learns on GPUs (training.device=cuda, one GPU per rank by node-local rank): the
# same learning bar, and the training loss must fall (on one rank where the machine has one GPU:
# run_on_gpus). Without a visible GPU the driver says so at start-up and the test is
# reported as skipped (HALO_TEST_SKIPPED), not passed.
include(${SRC}/common.cmake)
set(d ${WORK}/learns_gpu)
run_on_gpus(out ${d} training.device=cuda training.epochs=16 data.batch_size=8 model.dropout=0
            optimizer.warmup_epochs=1 optimizer.base_lr=0.08 optimizer.decay_epochs=[10,14]
            checkpoint.path= output.metrics=${d}/metrics.jsonl)
if(out MATCHES "sees no CUDA GPU|without CUDA|without NCCL")
  message("HALO_TEST_SKIPPED: no CUDA GPU visible to the ranks, or a build without CUDA or NCCL")
  return()
endif()
run_python(${SUPPORT}/check_train_loss_falls.py ${d}/metrics.jsonl 0.9)
run_python(${SRC}/check_learning.py ${d}/metrics.jsonl 0.75)
