# Runs halo-insitu-dist under mpiexec (script mode) and checks its exit status and output.
#   -DCMD=<launcher and program, '|'-separated>  -DARGS=<arguments, '|'-separated>
#   -DEXPECT=<regular expression the output must match>
#   -DFAIL=ON when the run must exit non-zero (a refused setting)
string(REPLACE "|" ";" CMD "${CMD}")
string(REPLACE "|" ";" ARGS "${ARGS}")
execute_process(COMMAND ${CMD} ${ARGS} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
message("${out}")
if(FAIL AND rc EQUAL 0)
  message(FATAL_ERROR "halo-insitu-dist accepted settings it should refuse")
elseif(NOT FAIL AND NOT rc EQUAL 0)
  message(FATAL_ERROR "halo-insitu-dist failed (${rc}); see above")
endif()
if(NOT out MATCHES "${EXPECT}")
  message(FATAL_ERROR "the output does not say '${EXPECT}'")
endif()
