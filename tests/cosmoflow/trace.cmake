# output.trace: a 2-rank run with validation and checkpoints writes one Chrome trace holding
# both ranks' rows (layers, step phases, gradient buckets, validation, checkpoint), and the
# driver says where it is.
include(${SRC}/common.cmake)
set(t ${WORK}/trace/trace.json)
file(REMOVE_RECURSE ${WORK}/trace)
run_driver(trace training.epochs=2 checkpoint.path=${WORK}/trace/ckpt.h5 output.trace=${t})
if(NOT EXISTS ${t})
  message(FATAL_ERROR "output.trace=${t} was not written")
endif()
run_python(${SUPPORT}/check_trace.py ${t} 2 step,validation,checkpoint)
expect_in_log(trace "trace '${t}' \\(2 ranks, [0-9]+ events on rank 0\\)")
