# A rank SIGKILLed mid-epoch (a node lost) ends the job non-zero within a minute, leaving no
# driver process behind (tests/support/signal_faults.py).
include(${SRC}/common.cmake)
execute_process(COMMAND ${PYTHON} ${SUPPORT}/signal_faults.py killed-rank --work ${WORK}/killed_rank
                        -- ${MPI} ${DRIVER} training.epochs=2 data.batch_size=8 ${SMALL}
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the job did not end cleanly after a rank was killed (${rc})")
endif()
