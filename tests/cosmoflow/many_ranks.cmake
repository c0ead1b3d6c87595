# Many ranks (issue 15, item 6), oversubscribed on the test machine: 32 ranks train one epoch
# of the 256 tiny volumes at global batch 64 (2 per rank, 4 steps), then 16 ranks resume that
# checkpoint for a second epoch at the same global batch (4 per rank). Checked:
#   every training volume is read once per epoch and every validation volume counted once
#     (the metrics file's steps, train_samples and val_samples, both runs);
#   the watchdog stays quiet (dist.stall_timeout_s=60, far above a step here) and the job ends 0;
#   the resumed run continues at epoch 2, step 8, and says once that the rank count changed;
#   the configuration file is read by rank 0 alone: it is a named pipe written once, so a
#     second reader would block in open() and the run would time out;
#   a resume at another global batch is refused, naming both and the fix.
include(${SRC}/common.cmake)
set(d ${WORK}/many_ranks)
file(REMOVE_RECURSE ${d})
file(MAKE_DIRECTORY ${d})
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

# The same checkpoint at another global batch is refused, naming both batches and the fix.
run_driver_fails(many_ranks_other_batch --resume training.epochs=3 ${common} data.batch_size=32
                 EXPECT "trained at a global batch of 64 \\(16 ranks x 4\\); this run's is 32 \\(2 ranks x 16\\)"
                 "data.batch_size=64")
