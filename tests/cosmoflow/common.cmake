# Runs halo-cosmoflow on 2 ranks with the tests' small model; fails the test on error.
string(REPLACE "|" ";" MPI "${MPI}")
set(SMALL data.train=${WORK}/data16/train data.validation=${WORK}/data16/validation model.input_size=16
    model.conv_layers=4 model.base_filters=8 model.dense=[32,16] output.progress_style=plain
    output.progress_interval_s=30 training.target_mae=0)

function(run_driver log)
  execute_process(COMMAND ${MPI} ${DRIVER} ${ARGN} ${SMALL} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  file(WRITE ${WORK}/${log}.log "${out}")
  message("---- ${log}\n${out}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "halo-cosmoflow failed (${rc}); see above")
  endif()
endfunction()

function(run_python)
  execute_process(COMMAND ${PYTHON} ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "check failed: ${ARGN}")
  endif()
endfunction()
