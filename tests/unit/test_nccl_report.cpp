// What runs of the NCCL code without a GPU can check: the watchdog's failure message names
// the rank, the GPU, the bucket and the operation and says what to do; and building a
// NcclCommunicator where it cannot work fails with a message that says why, instead of
// hanging the other ranks.
#include <catch2/catch.hpp>

#include "halo/cuda/runtime.hpp"
#include "halo/dist/nccl.hpp"

using namespace halo;

TEST_CASE("nccl watchdog: a stall report names rank, GPU, bucket, operation and timeout", "[nccl]") {
  dist::NcclFailure f;
  f.rank = 5;
  f.size = 8;
  f.device = 1;
  f.operation = "gradient allreduce bucket 2 (3 params, 1.2 MB: fc3/bias .. fc2/weight)";
  f.waited_s = 61.5;
  f.timeout_s = 60;
  const std::string stall = dist::format_nccl_failure(f);
  CHECK_THAT(stall, Catch::StartsWith("halo NCCL watchdog: 'gradient allreduce bucket 2 (3 params"));
  CHECK_THAT(stall, Catch::Contains("on rank 5 of 8 (cuda:1)"));
  CHECK_THAT(stall, Catch::Contains("has waited 61.5 s without completing (limit 60 s)"));
  CHECK_THAT(stall, Catch::Contains("ncclCommAbort"));
  CHECK_THAT(stall, Catch::Contains("NCCL_DEBUG"));
  CHECK_THAT(stall, Catch::Contains("stall_timeout_s"));

  f.error = "remote process exited or there was a network error";
  f.waited_s = 2;
  const std::string err = dist::format_nccl_failure(f);
  CHECK_THAT(err, Catch::Contains("failed after 2 s with NCCL error: remote process exited"));
  CHECK_THAT(err, !Catch::Contains("has waited"));
  CHECK_THAT(err, !Catch::Contains("stall_timeout_s"));  // raising the limit does not cure an error
}

TEST_CASE("nccl: without NCCL or without a GPU the communicator refuses clearly", "[nccl]") {
  dist::MpiSession mpi;
  dist::Communicator comm(MPI_COMM_SELF);
  if (!dist::nccl_available()) {
    REQUIRE_THROWS_WITH(dist::NcclCommunicator(comm), Catch::Contains("this build has no NCCL"));
  } else if (!cuda::available()) {
    REQUIRE_THROWS_WITH(dist::NcclCommunicator(comm), Catch::Contains("rank 0 sees no CUDA GPU"));
  } else {
    SUCCEED("NCCL and a GPU are here: test_nccl_cuda covers the communicator");
  }
}

TEST_CASE("nccl: ranks sharing a GPU are named before ncclCommInitRank could fail on them", "[nccl]") {
  // One GPU per rank, on two hosts whose GPUs have the same bus ids: nothing is shared.
  CHECK(dist::describe_shared_gpus({"n1/0000:19:00.0 (cuda:0)", "n1/0000:3B:00.0 (cuda:1)",
                                    "n2/0000:19:00.0 (cuda:0)", "n2/0000:3B:00.0 (cuda:1)"})
            .empty());
  CHECK(dist::describe_shared_gpus({"n1/0000:19:00.0 (cuda:0)"}).empty());
  // Ranks 1 and 3 map to the same GPU of n1 (say, CUDA_VISIBLE_DEVICES differing per rank).
  const std::string msg = dist::describe_shared_gpus({"n1/0000:19:00.0 (cuda:0)", "n1/0000:3B:00.0 (cuda:0)",
                                                      "n2/0000:19:00.0 (cuda:0)", "n1/0000:3B:00.0 (cuda:1)"});
  CHECK_THAT(msg, Catch::Contains("ranks 1 and 3 (2 ranks in all) share the GPU 0000:3B:00.0 on n1 "
                                  "(n1/0000:3B:00.0 (cuda:0) and n1/0000:3B:00.0 (cuda:1))"));
  CHECK_THAT(msg, Catch::Contains("NCCL needs one GPU per rank"));
  CHECK_THAT(msg, Catch::Contains("--gpus-per-task=1"));
  CHECK_THAT(msg, Catch::Contains("training.device=cpu"));
  // Two ranks launched on a one-GPU machine.
  CHECK_THAT(dist::describe_shared_gpus({"box/0000:01:00.0 (cuda:0)", "box/0000:01:00.0 (cuda:0)"}),
             Catch::Contains("ranks 0 and 1 (2 ranks in all) share the GPU 0000:01:00.0 on box"));
  // Ranks without a GPU (empty) are reported by their own check, not as sharing one.
  CHECK(dist::describe_shared_gpus({"", ""}).empty());
}
