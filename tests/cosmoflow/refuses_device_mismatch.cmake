# The start-up checks of training.device and dist.backend, through the driver on 2 ranks:
# a mismatch stops the job before any data is read, with a message naming the key, the rank
# and its host. Runs in every build; on a machine with GPUs the cuda case must instead start.
include(${SRC}/common.cmake)

run_driver_fails(refused_nccl_on_the_CPU training.device=cpu dist.backend=nccl --print-config
                 EXPECT "dist.backend=nccl" "rank [01] on " "trains on the CPU")
run_driver_fails(refused_unknown_backend dist.backend=gloo --print-config
                 EXPECT "dist.backend must be auto, mpi or nccl")

# training.device=cuda: refused on a machine without a GPU (or a build without CUDA), naming
# the rank and host; accepted where the ranks see GPUs (then --print-config ends the run).
execute_process(COMMAND ${MPI} ${DRIVER} training.device=cuda --print-config ${SMALL}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
message("---- cuda\n${out}")
if(NOT rc EQUAL 0)
  if(NOT out MATCHES "training.device=cuda: rank [01] on .*(sees no CUDA GPU|without CUDA)")
    message(FATAL_ERROR "training.device=cuda failed without naming the rank, host and cause")
  endif()
endif()
