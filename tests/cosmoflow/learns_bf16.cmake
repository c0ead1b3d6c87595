# cosmoflow_learns in bf16 on the CPU (training.precision=bf16: bf16 activations, f32 master
# weights): the same learning bar, and a final validation MAE no worse than the f32 run's by
# more than 0.01, with the same seed, data and schedule (run here too, so the two compare in
# one test; why one-sided: tests/support/check_precision_match.py).
include(${SRC}/common.cmake)
set(common training.epochs=16 data.batch_size=8 model.dropout=0 optimizer.warmup_epochs=1 optimizer.base_lr=0.08
           optimizer.decay_epochs=[10,14] checkpoint.path=)
foreach(p f32 bf16)
  set(d ${WORK}/learns_${p})
  file(REMOVE_RECURSE ${d})
  file(MAKE_DIRECTORY ${d})
  execute_process(COMMAND ${MPI} ${DRIVER} ${common} training.precision=${p} output.metrics=${d}/metrics.jsonl ${SMALL}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(p STREQUAL "bf16" AND out MATCHES "bf16 convolutions on the CPU need oneDNN")
    message("HALO_TEST_SKIPPED: a build without oneDNN has no bf16 convolutions on the CPU")
    return()
  endif()
  message("---- ${p}\n${out}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${_driver_name} training.precision=${p} failed (${rc}); see above")
  endif()
endforeach()
run_python(${SRC}/check_learning.py ${WORK}/learns_bf16/metrics.jsonl 0.75)
run_python(${SUPPORT}/check_precision_match.py ${WORK}/learns_f32/metrics.jsonl ${WORK}/learns_bf16/metrics.jsonl
           val_mae 0.01 lower)
