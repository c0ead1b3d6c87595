# Script-mode helpers for the driver tests (see driver_tests.cmake). The including script sets
# SMALL, the configuration overrides of its small model, before calling run_driver.
string(REPLACE "|" ";" MPI "${MPI}")
get_filename_component(_driver_name "${DRIVER}" NAME)

# Runs the driver on 2 ranks with ${SMALL} and the given extra arguments; the output goes to
# WORK/<log>.log and the test log; a non-zero exit fails the test.
function(run_driver log)
  execute_process(COMMAND ${MPI} ${DRIVER} ${ARGN} ${SMALL} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  file(WRITE ${WORK}/${log}.log "${out}")
  message("---- ${log}\n${out}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${_driver_name} failed (${rc}); see above")
  endif()
endfunction()

# Runs a Python check; a non-zero exit fails the test.
function(run_python)
  execute_process(COMMAND ${PYTHON} ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "check failed: ${ARGN}")
  endif()
endfunction()
