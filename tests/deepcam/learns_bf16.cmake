# deepcam_learns in bf16 on the CPU (training.precision=bf16: bf16 activations and activation
# gradients, f32 master weights, BatchNorm normalising in f32): the same learning bar as the
# f32 run. (Its final IoU is 0-0.08 below the same f32 run's on these 64x96 fields: 0.80 vs
# 0.87, 0.77 vs 0.85, 0.86 vs 0.86 for seeds 0-2; docs/performance.md.)
include(${SRC}/common.cmake)
set(d ${WORK}/${NAME})
run_at_precision(bf16 ${d} checkpoint.path= training.epochs=20 data.batch_size=8 optimizer.name=lamb optimizer.lr=0.004
                 optimizer.warmup_steps=32 optimizer.schedule=multistep optimizer.milestones=[256]
                 loss.class_weights=auto model.batchnorm_group_size=0)
if(HALO_PRECISION_SKIPPED)
  return()
endif()
run_python(${SRC}/check_learning.py ${d}/metrics.jsonl)
