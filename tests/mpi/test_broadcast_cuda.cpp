// dist::broadcast_tensors on GPU tensors: they go through host copies, small ones in packs and
// large ones alone, and every rank ends with the root's values in its own device memory and
// layout. Ranks may share one GPU (no NCCL here); ctest runs it on 2 ranks and reports it
// skipped (exit 77) without a GPU.
#include "gpu_test_skip.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "dist_test_model.hpp"
#include "halo/cuda/runtime.hpp"
#include "halo/dist/communicator.hpp"
#include "halo/dist/model_sync.hpp"

using namespace halo;
using halo::disttest::rank_tensor;
using halo::disttest::rank_values;

TEST_CASE("broadcast_tensors fills GPU tensors with the root's values, packed and alone", "[dist][gpu]") {
  dist::Communicator comm;
  const int me = comm.rank(), root = comm.size() - 1;
  const Device gpu = Device::cuda(me % cuda::device_count());
  cuda::set_device(gpu.index);
  struct Case {
    std::string what;
    Tensor t;
    int salt;
    bool channels_last;
  };
  std::vector<Case> cases;
  cases.push_back({"f32[5] (packed)", rank_tensor(me, {5}, DType::f32, 1).to(gpu), 1, false});
  cases.push_back({"bf16[33] (packed)", rank_tensor(me, {33}, DType::bf16, 2).to(gpu), 2, false});
  cases.push_back({"f32 channels-last, 320 KiB (alone)",
                   rank_tensor(me, {2, 8, 64, 80}, DType::f32, 3).to_memory_format(MemoryFormat::channels_last).to(gpu), 3,
                   true});
  cases.push_back({"f32[7] after it (packed)", rank_tensor(me, {7}, DType::f32, 4).to(gpu), 4, false});
  std::vector<Tensor*> ts;
  for (auto& c : cases) ts.push_back(&c.t);
  dist::broadcast_tensors(comm, ts, root);
  for (auto& c : cases) {
    INFO(c.what);
    REQUIRE(c.t.device() == gpu);
    REQUIRE(c.t.is_channels_last() == c.channels_last);
    std::vector<double> got = c.t.to(Device::cpu()).to(DType::f64).contiguous().to_vector<double>();
    REQUIRE(got == rank_values(root, c.t.numel(), c.salt));
  }
}
