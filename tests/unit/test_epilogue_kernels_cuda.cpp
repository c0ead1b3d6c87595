// The convolution epilogue kernels (bias + activation, per-channel bias-gradient sums) and the
// tiled max/avg pooling backward against plain CPU loops on random data, on and off their fast
// paths: channel counts that are and are not multiples of the 16-byte vector width, the
// channels-last (column) and contiguous (plane) sums, and pooling windows with many ties.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>

#include "../../kernels/cuda/conv_epilogue.hpp"
#include "../../kernels/cuda/pool.hpp"
#include "gpu_test_skip.hpp"
#include "halo/cuda/runtime.hpp"
#include "halo/ops/pool.hpp"
#include "halo/tensor/tensor.hpp"

using namespace halo;

namespace {

const Device gpu = Device::cuda(0);

std::vector<float> random_values(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

void* stream() { return static_cast<void*>(cuda::current_stream(0)); }

}  // namespace

TEST_CASE("cuda bias + leaky_relu epilogue matches a CPU loop for any channel count and layout") {
  const float slope = 0.3f;
  for (DType dt : {DType::f32, DType::bf16}) {
    for (int64_t C : {32, 40, 6, 3}) {
      for (bool channels_last : {true, false}) {
        const int64_t N = 3, inner = 5 * 7;  // n % 8 != 0 for C = 3: the vector path is refused
        const int64_t n = N * C * inner;
        const std::vector<float> y0 = random_values(size_t(n), 1 + uint32_t(C)), bias = random_values(size_t(C), 2);
        // The kernel reads and rounds the stored values: start from what the GPU holds.
        Tensor y = Tensor::from_vector(y0, {n}).to(dt);
        const std::vector<float> stored = y.to_vector<float>();
        y = y.to(gpu);
        const Tensor b = Tensor::from_vector(bias, {C}).to(gpu);
        const int64_t in = channels_last ? 1 : inner;
        cuda::raw::bias_activation(y.raw_data(), dt == DType::bf16, static_cast<const float*>(b.raw_data()), n, C,
                                   in, ops::Activation::leaky_relu, slope, stream());
        const std::vector<float> got = y.to_vector<float>();
        double worst = 0;
        for (int64_t i = 0; i < n; ++i) {
          const float v = stored[size_t(i)] + bias[size_t((i / in) % C)];
          const float want = v > 0.f ? v : slope * v;
          worst = std::max(worst, double(std::abs(got[size_t(i)] - want)) / std::max(1.0, double(std::abs(want))));
        }
        INFO("dtype " << name(dt) << " C " << C << (channels_last ? " channels-last" : " contiguous"));
        CHECK(worst < (dt == DType::bf16 ? 8e-3 : 1e-6));
      }
    }
  }
}

TEST_CASE("cuda per-channel gradient sums match a double-precision CPU sum in both layouts") {
  for (DType dt : {DType::f32, DType::bf16}) {
    for (int64_t C : {32, 70, 5}) {
      for (bool channels_last : {true, false}) {
        // Enough elements per channel that many blocks add into each channel.
        const int64_t N = 2, inner = 40000, n = N * C * inner;
        Tensor g = Tensor::from_vector(random_values(size_t(n), 3 + uint32_t(C)), {n}).to(dt);
        const std::vector<float> stored = g.to_vector<float>();
        g = g.to(gpu);
        Tensor out = Tensor::full({C}, 1.0).to(gpu);  // the kernel adds to what is there
        const int64_t in = channels_last ? 1 : inner;
        cuda::raw::channel_sums_add(g.raw_data(), dt == DType::bf16, n, C, in, static_cast<float*>(out.raw_data()),
                                    stream());
        std::vector<double> want(size_t(C), 1.0);
        for (int64_t i = 0; i < n; ++i) want[size_t((i / in) % C)] += stored[size_t(i)];
        const std::vector<float> got = out.to_vector<float>();
        INFO("dtype " << name(dt) << " C " << C << (channels_last ? " channels-last" : " contiguous"));
        // f32 partial sums of N * inner = 80000 values of size 1: about 1e-6 relative to sqrt(n).
        for (int64_t c = 0; c < C; ++c) CHECK(std::abs(got[size_t(c)] - want[size_t(c)]) < 2e-2);
      }
    }
  }
}

TEST_CASE("cuda tiled pooling backward (kernel = stride) matches the CPU, ties included") {
  for (auto kind : {ops::PoolKind::max, ops::PoolKind::avg}) {
    for (DType dt : {DType::f32, DType::bf16}) {
      for (auto fmt : {MemoryFormat::channels_last, MemoryFormat::contiguous}) {
        ops::PoolConfig cfg;
        cfg.kind = kind;
        cfg.kernel = {2, 2, 2};
        cfg.stride = {2, 2, 2};
        cfg.padding = {0, 0, 0};
        // Values from {0, 1, 2}: most windows hold their maximum more than once, so the
        // first-maximum rule decides where the gradient goes.
        const Shape s{2, 5, 8, 6, 4};
        std::mt19937 rng(11);
        std::vector<float> v(size_t(numel(s)));
        for (auto& e : v) e = float(rng() % 3);
        const Tensor x = Tensor::from_vector(v, s).to_memory_format(fmt);
        const Tensor y_ref = ops::pool_forward(x, cfg);
        const Tensor gy = Tensor::from_vector(random_values(size_t(y_ref.numel()), 12), y_ref.shape());
        const Tensor gyr = gy.to(dt).to(DType::f32);  // the values the GPU sees
        const Tensor dx_ref = ops::pool_backward(gyr, x, cfg);
        const Tensor dx = ops::pool_backward(gy.to(dt).to(gpu), x.to(dt).to(gpu), cfg);
        CHECK(dx.strides() == x.strides());
        const auto a = dx.to_vector<double>(), b = dx_ref.to_vector<double>();
        double worst = 0;
        for (size_t i = 0; i < a.size(); ++i)
          worst = std::max(worst, std::abs(a[i] - b[i]) / std::max(1.0, std::abs(b[i])));
        INFO("kind " << (kind == ops::PoolKind::max ? "max" : "avg") << " dtype " << name(dt));
        CHECK(worst < (dt == DType::bf16 ? 8e-3 : 1e-6));
      }
    }
  }
}
