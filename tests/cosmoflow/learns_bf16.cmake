# cosmoflow_learns in bf16 on the CPU (training.precision=bf16: bf16 activations, f32 master
# weights): the same learning bar, and a final validation MAE no worse than the f32 run's by
# more than 0.01, with the same seed, data and schedule (run here too, so the two compare in
# one test; why one-sided: tests/support/check_precision_match.py).
include(${SRC}/common.cmake)
set(common training.epochs=16 data.batch_size=8 model.dropout=0 optimizer.warmup_epochs=1 optimizer.base_lr=0.08
           optimizer.decay_epochs=[10,14] checkpoint.path=)
foreach(p f32 bf16)
  run_at_precision(${p} ${WORK}/learns_${p} ${common})
  if(HALO_PRECISION_SKIPPED)
    return()
  endif()
endforeach()
run_python(${SRC}/check_learning.py ${WORK}/learns_bf16/metrics.jsonl 0.75)
run_python(${SUPPORT}/check_precision_match.py ${WORK}/learns_f32/metrics.jsonl ${WORK}/learns_bf16/metrics.jsonl
           val_mae 0.01 lower)
