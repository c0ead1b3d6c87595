// Global average pooling and dropout on the GPU against the CPU: pooling forward and backward
// in both layouts, 2-D and 3-D, f32 and bf16; dropout masks drawn on the device bit-for-bit
// equal to the CPU's for the same seed and step (both layouts), and the Dropout layer's
// forward and backward on a GPU tensor.
#include <catch2/catch.hpp>

#include <cstring>

#include "cuda_test_util.hpp"
#include "gpu_test_skip.hpp"
#include "halo/nn/dropout.hpp"
#include "halo/nn/pool.hpp"
#include "halo/ops/elementwise.hpp"
#include "halo/ops/pool.hpp"

using namespace halo;
using namespace halo_cuda_test;

TEST_CASE("cuda global average pooling matches the CPU in both layouts") {
  // The 3-D shape has more channels than one block of the channels-last kernel covers and a
  // channel count that is not a multiple of 32; the 2-D one a long spatial run per channel.
  for (const Shape& s : {Shape{3, 70, 5, 4, 6}, Shape{2, 5, 33, 41}, Shape{4, 3, 1, 1, 1}})
    for (DType dt : {DType::f32, DType::bf16})
      for (MemoryFormat fmt : {MemoryFormat::channels_last, MemoryFormat::contiguous})
        for (bool keep : {true, false}) {
          INFO(to_string(s) << " " << name(dt) << (fmt == MemoryFormat::channels_last ? " channels_last" : " contiguous")
                            << (keep ? " keep_dims" : ""));
          const Tensor x = rounded(random_tensor(s, 21, fmt, 0.5f), dt);
          const Tensor y_ref = ops::global_avg_pool_forward(x, keep);
          const Tensor y = ops::global_avg_pool_forward(on_gpu(x, dt), keep);
          CHECK(y.device() == gpu);
          CHECK(y.dtype() == dt);
          CHECK(y.shape() == y_ref.shape());
          CHECK(rel_err(y, y_ref) < tol(dt));

          const Tensor gy = rounded(random_tensor(y_ref.shape(), 22), dt);
          const Tensor gx_ref = ops::global_avg_pool_backward(gy, s, fmt);
          const Tensor gx = ops::global_avg_pool_backward(on_gpu(gy, dt), s, fmt);
          CHECK(gx.device() == gpu);
          CHECK(gx.shape() == s);
          CHECK(gx.memory_format() == fmt);
          CHECK(rel_err(gx, gx_ref) < tol(dt));
        }
}

TEST_CASE("cuda GlobalAvgPool layer runs forward and backward on the device") {
  nn::GlobalAvgPool pool(false);
  const Tensor x = random_tensor({2, 6, 4, 4, 4}, 23, MemoryFormat::channels_last);
  const Tensor y = pool.forward({x.to(gpu)});
  CHECK(y.device() == gpu);
  CHECK(rel_err(y, ops::global_avg_pool_forward(x, false)) < 1e-5);
  const Tensor gy = random_tensor({2, 6}, 24);
  const auto gx = pool.backward(gy.to(gpu));
  CHECK(gx.at(0).device() == gpu);
  CHECK(gx.at(0).is_channels_last());
  CHECK(rel_err(gx.at(0), ops::global_avg_pool_backward(gy, x.shape(), MemoryFormat::channels_last)) < 1e-6);
}

namespace {
/// Exact comparison of two f32 tensors in logical order.
bool bitwise_equal(const Tensor& a, const Tensor& b) {
  const auto va = a.to(Device::cpu()).contiguous().to_vector<float>();
  const auto vb = b.to(Device::cpu()).contiguous().to_vector<float>();
  return va.size() == vb.size() && std::memcmp(va.data(), vb.data(), va.size() * sizeof(float)) == 0;
}
}  // namespace

TEST_CASE("cuda dropout masks are bitwise equal to the CPU's for the same seed and step") {
  for (const Shape& s : {Shape{4, 300}, Shape{2, 5, 6, 7, 3}, Shape{3, 17, 9, 11}})
    for (MemoryFormat fmt : {MemoryFormat::contiguous, MemoryFormat::channels_last}) {
      if (s.size() < 3 && fmt == MemoryFormat::channels_last) continue;
      for (double p : {0.1, 0.5, 0.9})
        for (uint64_t step : {uint64_t(0), uint64_t(7)}) {
          INFO(to_string(s) << " p " << p << " step " << step);
          const Tensor like = Tensor::empty(s, DType::f32, Device::cpu(), fmt);
          const Tensor m_ref = ops::dropout_mask(like, p, 1234, step);
          const Tensor m = ops::dropout_mask(Tensor::empty(s, DType::f32, gpu, fmt), p, 1234, step);
          CHECK(m.device() == gpu);
          CHECK(m.strides() == m_ref.strides());
          CHECK(bitwise_equal(m, m_ref));
          // A different step draws a different mask.
          CHECK_FALSE(bitwise_equal(ops::dropout_mask(Tensor::empty(s, DType::f32, gpu, fmt), p, 1234, step + 1),
                                    m_ref));
          // bf16 masks hold the f32 mask's values rounded to bf16 (zeros stay zeros).
          const Tensor mb = ops::dropout_mask(Tensor::empty(s, DType::bf16, gpu, fmt), p, 1234, step);
          CHECK(mb.dtype() == DType::bf16);
          CHECK(bitwise_equal(mb.to(DType::f32), m_ref.to(DType::bf16).to(DType::f32)));
        }
    }
}

TEST_CASE("cuda Dropout layer draws the CPU's masks step after step") {
  nn::Dropout cpu_layer(0.3, 99), gpu_layer(0.3, 99);
  cpu_layer.set_training(true);
  gpu_layer.set_training(true);
  const Tensor x = random_tensor({2, 8, 3, 4, 5}, 25, MemoryFormat::channels_last);
  for (int step = 0; step < 3; ++step) {
    const Tensor y_ref = cpu_layer.forward({x});
    const Tensor y = gpu_layer.forward({x.to(gpu)});
    CHECK(y.device() == gpu);
    CHECK(bitwise_equal(y, y_ref));
    const Tensor gy = random_tensor(x.shape(), 26 + uint32_t(step));
    CHECK(bitwise_equal(gpu_layer.backward(gy.to(gpu)).at(0), cpu_layer.backward(gy).at(0)));
  }
  CHECK(gpu_layer.step() == 3);
}
