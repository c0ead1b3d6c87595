# A corrupt checkpoint at --resume (label fault): one bit flipped inside a parameter's stored
# data, as a bad disk or a broken copy would. With an older checkpoint kept
# (checkpoint.keep=2) the run warns which file is corrupt and why, and resumes from the older
# one; with the corrupt file alone, --resume fails naming the file and the dataset.
# HALO_FAULT_TOOL is tests/fault's halo_fault_checkpoint (its `flip` mode).
include(${SRC}/common.cmake)
set(d ${WORK}/fault_resume)
file(REMOVE_RECURSE ${d})
file(MAKE_DIRECTORY ${d}/alone)
set(RUN training.epochs=2 data.batch_size=8 model.dropout=0 checkpoint.keep=2 output.progress=false)

# 32 steps per epoch: checkpoints at step 32 (end of epoch 1) and 40 (the stop).
run_driver(fault_first ${RUN} checkpoint.path=${d}/ckpt.h5 --stop-after-steps 40)
foreach(f ckpt.h5 ckpt.32.h5)
  if(NOT EXISTS ${d}/${f})
    message(FATAL_ERROR "checkpoint.keep=2 should have kept ${d}/${f}")
  endif()
endforeach()
execute_process(COMMAND $ENV{HALO_FAULT_TOOL} flip ${d}/ckpt.h5 auto OUTPUT_VARIABLE dataset RESULT_VARIABLE rc)
string(STRIP "${dataset}" dataset)
if(NOT rc EQUAL 0 OR dataset STREQUAL "")
  message(FATAL_ERROR "could not corrupt ${d}/ckpt.h5 (${rc})")
endif()
message("flipped a bit of dataset '${dataset}' in ${d}/ckpt.h5")
file(COPY ${d}/ckpt.h5 DESTINATION ${d}/alone)

# Falls back to the older checkpoint, with a warning naming the bad file, the dataset and why.
run_driver(fault_fallback ${RUN} checkpoint.path=${d}/ckpt.h5 --resume --stop-after-steps 44)
expect_in_log(fault_fallback "checkpoint '${d}/ckpt.h5' is corrupt: dataset '${dataset}' does not match its checksum"
          "falling back to the older checkpoint '${d}/ckpt.32.h5'" "resumed from '${d}/ckpt.32.h5' at epoch 2 step 0"
          "moved the unusable checkpoint '${d}/ckpt.h5' to '${d}/ckpt.h5.corrupt'")
# The corrupt file left the rotation: the run's checkpoint at step 44 is the newest, and the
# one kept before it is the good step 32, not the corrupt step 40.
if(NOT EXISTS ${d}/ckpt.h5.corrupt OR EXISTS ${d}/ckpt.40.h5 OR NOT EXISTS ${d}/ckpt.32.h5)
  message(FATAL_ERROR "after the fallback the kept checkpoints should be ckpt.h5 (44) and ckpt.32.h5")
endif()

# Nothing to fall back to: a clear error, not a silent resume.
execute_process(COMMAND ${MPI} ${DRIVER} ${RUN} ${SMALL} checkpoint.path=${d}/alone/ckpt.h5 --resume
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
file(WRITE ${WORK}/fault_alone.log "${out}")
message("---- fault_alone\n${out}")
if(rc EQUAL 0)
  message(FATAL_ERROR "--resume from a corrupt checkpoint succeeded")
endif()
expect_in_log(fault_alone "checkpoint '${d}/alone/ckpt.h5' is corrupt: dataset '${dataset}'")
