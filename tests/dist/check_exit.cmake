# Runs a command that must fail: exit code non-zero or a signal (not a timeout), within MAX_SECONDS,
# with every regular expression in EXPECT (a ;-list) found in its output.
string(REPLACE "|" ";" _cmd "${CMD}")
string(TIMESTAMP _t0 "%s")
execute_process(COMMAND ${_cmd} RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _err
                TIMEOUT ${MAX_SECONDS})
string(TIMESTAMP _t1 "%s")
math(EXPR _elapsed "${_t1} - ${_t0}")
message("${_out}${_err}")
message("exit: ${_rc}, elapsed: ${_elapsed} s")
if(_rc MATCHES "[Tt]imeout")
  message(FATAL_ERROR "did not exit by itself within ${MAX_SECONDS} s (${_rc})")
endif()
# A launcher ended by a signal after the job aborted (Open MPI's mpiexec has been seen to
# crash in its own finalize once a rank was SIGSTOPped and killed) still ended the job in
# time, without a zero exit: the output decides the rest.
if(NOT _rc MATCHES "^[0-9]+$")
  message("the launcher ended by a signal (${_rc}), not by a timeout")
endif()
if(_rc EQUAL 0)
  message(FATAL_ERROR "exited 0; a non-zero exit was expected")
endif()
string(REPLACE "|" ";" _expect "${EXPECT}")
foreach(re ${_expect})
  if(NOT "${_out}${_err}" MATCHES "${re}")
    message(FATAL_ERROR "output lacks '${re}'")
  endif()
endforeach()
