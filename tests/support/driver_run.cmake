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

# Runs the driver like run_driver but expects it to fail: a zero exit fails the test, and so
# does output that does not match every regular expression given after EXPECT.
function(run_driver_fails log)
  cmake_parse_arguments(F "" "" "EXPECT" ${ARGN})
  execute_process(COMMAND ${MPI} ${DRIVER} ${F_UNPARSED_ARGUMENTS} ${SMALL} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  ERROR_VARIABLE out)
  file(WRITE ${WORK}/${log}.log "${out}")
  message("---- ${log} (expected to fail)\n${out}")
  if(rc EQUAL 0)
    message(FATAL_ERROR "${_driver_name} succeeded but should have stopped")
  endif()
  foreach(re ${F_EXPECT})
    if(NOT out MATCHES "${re}")
      message(FATAL_ERROR "${_driver_name}: the output does not say '${re}'")
    endif()
  endforeach()
endfunction()

# Fails the test unless the file WORK/<log>.log matches every regular expression given.
function(expect_in_log log)
  file(READ ${WORK}/${log}.log out)
  foreach(re ${ARGN})
    if(NOT out MATCHES "${re}")
      message(FATAL_ERROR "${log}.log does not say '${re}'")
    endif()
  endforeach()
endfunction()

# run_epochs(<log> <metrics file> <start-up regex or ""> <steps> <trained> <validated> <args>...):
# runs the driver writing <metrics file>, checks its start-up line against the regex, and
# checks every epoch's record: <steps> steps, <trained> samples trained, <validated> counted
# by validation (tests/support/check_epoch_counts.py).
function(run_epochs log metrics regex steps trained validated)
  run_driver(${log} ${ARGN} output.metrics=${metrics})
  if(regex)
    expect_in_log(${log} "${regex}")
  endif()
  run_python(${SUPPORT}/check_epoch_counts.py ${metrics} ${steps} ${trained} ${validated})
endfunction()

# run_at(<ranks> <log> [COPY <file> FIFO <pipe>] <args>...): the driver on <ranks> ranks
# (oversubscribed) instead of 2, failing on a non-zero exit or any stall report of the
# watchdog; with FIFO, a writer copies <file> into the named pipe <pipe> once while the
# driver runs (a second reader of the pipe would block, so the run would time out).
function(run_at ranks log)
  cmake_parse_arguments(R "" "COPY;FIFO" "" ${ARGN})
  list(FIND MPI "2" _np)  # the launcher's rank count, replaced
  set(mpi ${MPI})
  list(REMOVE_AT mpi ${_np})
  list(INSERT mpi ${_np} ${ranks})
  set(writer ${CMAKE_COMMAND} -E true)
  if(R_FIFO)
    set(writer sh -c "cat '${R_COPY}' > '${R_FIFO}'")
  endif()
  execute_process(COMMAND ${writer} COMMAND ${mpi} ${DRIVER} ${R_UNPARSED_ARGUMENTS} ${SMALL}
                  RESULTS_VARIABLE rcs OUTPUT_VARIABLE out ERROR_VARIABLE out TIMEOUT 120)
  file(WRITE ${WORK}/${log}.log "${out}")
  message("---- ${log} (${ranks} ranks)\n${out}")
  if(NOT rcs STREQUAL "0;0")
    message(FATAL_ERROR "${log}: the writer and the driver on ${ranks} ranks ended ${rcs} (a timeout if a rank "
                        "other than 0 opened the configuration pipe); see above")
  endif()
  if(out MATCHES "no collective for|aborting the job|[Ww]atchdog")
    message(FATAL_ERROR "${log}: the watchdog reported a stall")
  endif()
endfunction()

# run_on_gpus(<out var> <dir> <args>...): the GPU tests' run, `MPI DRIVER args SMALL`, one rank
# per GPU. Where the machine has fewer GPUs than the launch has ranks (one GPU, two ranks),
# the driver must refuse with the NcclCommunicator's "NCCL needs one GPU per rank" (checked:
# two ranks on one GPU would otherwise break inside ncclCommInitRank); the run is then made
# again on one rank in a clean <dir>, so the learning bar is checked on a one-GPU machine too.
# Returns the output of the run that trained; a run that says no GPU is visible is returned
# as it is, for the caller's skip.
function(run_on_gpus out_var dir)
  file(REMOVE_RECURSE ${dir})
  file(MAKE_DIRECTORY ${dir})
  execute_process(COMMAND ${MPI} ${DRIVER} ${ARGN} ${SMALL} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(out MATCHES "NCCL needs one GPU per rank")
    if(rc EQUAL 0)
      message(FATAL_ERROR "${_driver_name} reported ranks sharing a GPU but ended 0:\n${out}")
    endif()
    message("---- fewer GPUs than ranks: the driver refused, as it must:\n${out}\n---- again on one rank")
    list(FIND MPI "2" _np)
    set(one ${MPI})
    list(REMOVE_AT one ${_np})
    list(INSERT one ${_np} 1)
    file(REMOVE_RECURSE ${dir})
    file(MAKE_DIRECTORY ${dir})
    execute_process(COMMAND ${one} ${DRIVER} ${ARGN} ${SMALL} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  endif()
  if(NOT out MATCHES "sees no CUDA GPU|without CUDA|without NCCL")
    message("${out}")
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "${_driver_name} on cuda failed (${rc}); see above")
    endif()
  endif()
  set(${out_var} "${out}" PARENT_SCOPE)
endfunction()

# run_at_precision(<f32|bf16> <dir> <args>...): the driver on 2 ranks with
# training.precision=<p>, ${SMALL} and output.metrics=<dir>/metrics.jsonl, in a clean <dir>;
# a non-zero exit fails the test. Returns (sets HALO_PRECISION_SKIPPED in the caller) when
# the build or the CPU has no bf16 convolutions (no oneDNN, or a CPU without AVX-512), after
# saying so for the skip.
function(run_at_precision p dir)
  file(REMOVE_RECURSE ${dir})
  file(MAKE_DIRECTORY ${dir})
  execute_process(COMMAND ${MPI} ${DRIVER} ${ARGN} training.precision=${p} output.metrics=${dir}/metrics.jsonl ${SMALL}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(p STREQUAL "bf16" AND out MATCHES "bf16 convolutions on the CPU need")
    message("HALO_TEST_SKIPPED: no bf16 convolutions on this CPU or in this build (oneDNN, AVX-512)")
    set(HALO_PRECISION_SKIPPED TRUE PARENT_SCOPE)
    return()
  endif()
  message("---- training.precision=${p}\n${out}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${_driver_name} training.precision=${p} failed (${rc}); see above")
  endif()
endfunction()
