// Spatial parallelism on GPUs: the split CosmoFlow model on CUDA tensors (each rank's
// block on a GPU; halo windows, gathers and the spatial gradient sums staged through host
// memory over MPI) computes what the unsplit model computes on the CPU. Ranks may share one
// GPU (no NCCL here); ctest runs it on 2 ranks and reports it skipped (exit 77) without a GPU.
#include "gpu_test_skip.hpp"

#include <catch2/catch.hpp>
#include <mpi.h>

#include <algorithm>
#include <cmath>

#include "gradcheck.hpp"
#include "halo/cuda/runtime.hpp"
#include "halo/dist/spatial_grid.hpp"
#include "halo/models/cosmoflow.hpp"

using namespace halo;
using halo::testing::max_abs;
using halo::testing::max_abs_diff;
using halo::testing::random_tensor;

TEST_CASE("split CosmoFlow on the GPU equals the unsplit model on the CPU", "[spatial][gpu]") {
  dist::Communicator world(MPI_COMM_WORLD);
  const Device gpu = Device::cuda(world.rank() % cuda::device_count());
  models::CosmoFlowOptions o;
  o.input_size = 16;
  o.conv_layers = 3;
  o.base_filters = 4;
  o.dense = {8};
  o.dropout = 0;
  auto grid = std::make_shared<dist::SpatialGrid>(world, std::array<int, 3>{world.size(), 1, 1});
  nn::Model whole = models::cosmoflow(o);
  models::CosmoFlowOptions os = o;
  os.spatial = grid;
  nn::Model split = models::cosmoflow(os);
  whole.init(5);
  split.init(5);
  split.to(gpu);
  const Tensor x = random_tensor({2, 4, 16, 16, 16}, 21, DType::f32, 0.0, 1.0).to_memory_format(MemoryFormat::channels_last);
  const Tensor y = whole.forward(x);
  const Tensor ys = split.forward(nn::spatial_block(*grid, x).to(gpu));
  const Tensor gy = random_tensor(y.shape(), 22, DType::f32);
  whole.zero_grad();
  split.zero_grad();
  whole.backward(gy);
  split.backward(gy.to(gpu));
  // f32 on two devices whose convolution algorithms differ: relative to the largest value.
  const double tol = 1e-3;
  CHECK(max_abs_diff(ys.to(Device::cpu()), y) <= tol * std::max(1.0, max_abs(y)));
  const auto pw = whole.parameters(), ps = split.parameters();
  REQUIRE(pw.size() == ps.size());
  for (size_t i = 0; i < pw.size(); ++i) {
    INFO(pw[i]->name);
    CHECK(max_abs_diff(ps[i]->grad.to(Device::cpu()), pw[i]->grad) <= tol * std::max(1e-3, max_abs(pw[i]->grad)));
  }
}
