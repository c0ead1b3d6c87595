# Runs halo-deepcam on 2 ranks with the tests' very small model; fails the test on error.
string(REPLACE "|" ";" MPI "${MPI}")
set(SMALL data.train=${WORK}/data64/train data.validation=${WORK}/data64/validation model.channel_scale=0.0625
    model.middle_blocks=1 output.progress_style=plain output.progress_interval_s=30 training.target_iou=0
    checkpoint.path=)

function(run_driver log)
  execute_process(COMMAND ${MPI} ${DRIVER} ${ARGN} ${SMALL} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  file(WRITE ${WORK}/${log}.log "${out}")
  message("---- ${log}\n${out}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "halo-deepcam failed (${rc}); see above")
  endif()
endfunction()

function(run_python)
  execute_process(COMMAND ${PYTHON} ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "check failed: ${ARGN}")
  endif()
endfunction()
