# Many ranks for DeepCAM (issue 15, item 6), oversubscribed: 16 ranks train one epoch of the
# 128 tiny fields at global batch 32 (2 per rank, 4 steps), then 8 ranks resume that
# checkpoint for a second epoch at the same global batch (4 per rank). Checked: every field
# trained once per epoch and every validation field counted once (metrics file, both runs);
# the watchdog quiet and the job ending 0; the resume at epoch 2 saying once that the rank
# count changed.
include(${SRC}/common.cmake)
set(d ${WORK}/many_ranks)
file(REMOVE_RECURSE ${d})
file(MAKE_DIRECTORY ${d})
set(common data.batch_size=32 dist.stall_timeout_s=60 checkpoint.path=${d}/ckpt.h5)
run_at(16 many_ranks_16 training.epochs=1 ${common} output.metrics=${d}/metrics16.jsonl)
expect_in_log(many_ranks_16 "4 steps per epoch on every rank")
run_python(${SUPPORT}/check_epoch_counts.py ${d}/metrics16.jsonl 4 128 16)

run_at(8 many_ranks_8 --resume training.epochs=2 ${common} output.metrics=${d}/metrics8.jsonl)
expect_in_log(many_ranks_8 "written by 16 ranks, resuming on 8")
run_python(${SUPPORT}/check_epoch_counts.py ${d}/metrics8.jsonl 4 128 16)
file(STRINGS ${d}/metrics8.jsonl lines)
list(LENGTH lines n)
if(NOT n EQUAL 1 OR NOT lines MATCHES "\"epoch\": *2")
  message(FATAL_ERROR "many_ranks_8: expected one record, of epoch 2: ${lines}")
endif()
