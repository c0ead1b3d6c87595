# Many ranks (issue 15, item 6), oversubscribed on the test machine: 32 ranks train one epoch
# of the 256 tiny volumes at global batch 64 (2 per rank, 4 steps), then 16 ranks resume that
# checkpoint for a second epoch at the same global batch (4 per rank). Checked:
#   every training volume is read once per epoch and every validation volume counted once
#     (the metrics file's steps, train_samples and val_samples, both runs);
#   the watchdog stays quiet (dist.stall_timeout_s=60, far above a step here) and the job ends 0;
#   the resumed run continues at epoch 2, step 8, and says once that the rank count changed;
#   the configuration file is read by rank 0 alone: it is a named pipe written once, so a
#     second reader would block in open() and the run would time out.
include(${SRC}/common.cmake)
set(d ${WORK}/many_ranks)
file(REMOVE_RECURSE ${d})
file(MAKE_DIRECTORY ${d})
list(FIND MPI "2" _np)

# run_at(<ranks> <log> [COPY <file> FIFO <pipe>] <args>...): the driver on <ranks> ranks; with
# FIFO, a writer copies <file> into the named pipe <pipe> once while the driver runs.
function(run_at ranks log)
  cmake_parse_arguments(R "" "COPY;FIFO" "" ${ARGN})
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

set(common data.batch_size=64 dist.stall_timeout_s=60 checkpoint.path=${d}/ckpt.h5)
file(WRITE ${d}/config.yaml "training:\n  epochs: 1\n")
execute_process(COMMAND mkfifo ${d}/config.fifo RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "mkfifo ${d}/config.fifo failed")
endif()
run_at(32 many_ranks_32 COPY ${d}/config.yaml FIFO ${d}/config.fifo --config ${d}/config.fifo ${common}
       output.metrics=${d}/metrics32.jsonl)
expect_in_log(many_ranks_32 "4 steps per epoch on every rank")
run_python(${SUPPORT}/check_epoch_counts.py ${d}/metrics32.jsonl 4 256 32)

run_at(16 many_ranks_16 --resume training.epochs=2 ${common} output.metrics=${d}/metrics16.jsonl)
expect_in_log(many_ranks_16 "written by 32 ranks, resuming on 16")
file(READ ${WORK}/many_ranks_16.log out)
string(REGEX MATCHALL "written by 32 ranks" said "${out}")
list(LENGTH said n)
if(NOT n EQUAL 1)
  message(FATAL_ERROR "many_ranks_16: the rank-count warning appears ${n} times, expected once")
endif()
run_python(${SUPPORT}/check_epoch_counts.py ${d}/metrics16.jsonl 4 256 32)
file(STRINGS ${d}/metrics16.jsonl lines)
list(LENGTH lines n)
if(NOT n EQUAL 1 OR NOT lines MATCHES "\"epoch\": *2")
  message(FATAL_ERROR "many_ranks_16: expected one record, of epoch 2: ${lines}")
endif()
