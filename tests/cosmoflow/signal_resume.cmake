# Slurm's warning signal: SIGUSR1 in the middle of epoch 2 makes the driver finish its step,
# write the checkpoint and exit 75 (resumable); resumed with --resume, the run ends with the
# same bits and last metrics as an uninterrupted one (tests/support/signal_faults.py).
include(${SRC}/common.cmake)
set(RUN training.epochs=2 data.batch_size=8 model.dropout=0.5 optimizer.warmup_epochs=1 optimizer.base_lr=0.05)
execute_process(COMMAND ${PYTHON} ${SUPPORT}/signal_faults.py stop-resume --work ${WORK}/signal_resume
                        --compare ${SRC}/compare_checkpoints.py -- ${MPI} ${DRIVER} ${RUN} ${SMALL}
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "stop on SIGUSR1 and resume failed (${rc})")
endif()

# One step per epoch (global batch 256 = the whole set): the signal lands in an epoch's last
# step or its validation and must be acted on at that epoch's end, not never.
execute_process(COMMAND ${PYTHON} ${SUPPORT}/signal_faults.py stop-resume-one-step
                        --work ${WORK}/signal_resume_one_step --compare ${SRC}/compare_checkpoints.py
                        -- ${MPI} ${DRIVER} training.epochs=3 data.batch_size=256 model.dropout=0.5
                        optimizer.warmup_epochs=1 optimizer.base_lr=0.05 ${SMALL}
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "stop on SIGUSR1 at the end of an epoch and resume failed (${rc})")
endif()
