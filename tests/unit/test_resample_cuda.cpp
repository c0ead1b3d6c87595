// Concat/split along channels and nearest/bilinear upsampling on the GPU against the CPU on
// random inputs, in channels-last, contiguous and mixed layouts, f32 and bf16.
#include "cuda_test_util.hpp"
#include "gpu_test_skip.hpp"
#include "halo/ops/concat.hpp"
#include "halo/ops/upsample.hpp"

using namespace halo;
using namespace halo_cuda_test;

TEST_CASE("cuda concat and split along channels match the CPU", "[concat][gpu]") {
  using MF = MemoryFormat;
  for (DType dt : {DType::f32, DType::bf16}) {
    for (const std::vector<MF>& fmts : {std::vector<MF>{MF::channels_last, MF::channels_last, MF::channels_last},
                                        std::vector<MF>{MF::contiguous, MF::contiguous, MF::contiguous},
                                        std::vector<MF>{MF::channels_last, MF::contiguous, MF::channels_last}}) {
      const std::vector<int64_t> channels{3, 1, 6};
      std::vector<Tensor> cpu_in, gpu_in;
      for (size_t i = 0; i < channels.size(); ++i) {
        const Tensor t = rounded(random_tensor({2, channels[i], 5, 7}, uint32_t(50 + i), fmts[i]), dt);
        cpu_in.push_back(t);
        gpu_in.push_back(on_gpu(t, dt));
      }
      const Tensor ref = ops::concat_channels(cpu_in);
      const Tensor got = ops::concat_channels(gpu_in);
      CHECK(got.device() == gpu);
      CHECK(got.dtype() == dt);
      CHECK(got.memory_format() == ref.memory_format());
      CHECK(rel_err(got, ref) == 0.0);  // copies are exact

      const Tensor g = rounded(random_tensor(ref.shape(), 60, ref.memory_format()), dt);
      const auto ref_parts = ops::split_channels(g, channels);
      const auto parts = ops::split_channels(on_gpu(g, dt), channels);
      REQUIRE(parts.size() == ref_parts.size());
      for (size_t i = 0; i < parts.size(); ++i) {
        CHECK(parts[i].memory_format() == ref_parts[i].memory_format());
        CHECK(rel_err(parts[i], ref_parts[i]) == 0.0);
      }
    }
  }
  // 3-D volumes.
  const Tensor a = random_tensor({1, 2, 3, 4, 5}, 61, MemoryFormat::channels_last);
  const Tensor b = random_tensor({1, 4, 3, 4, 5}, 62, MemoryFormat::channels_last);
  CHECK(rel_err(ops::concat_channels({a.to(gpu), b.to(gpu)}), ops::concat_channels({a, b})) == 0.0);
}

TEST_CASE("cuda nearest and bilinear upsampling match the CPU", "[upsample][gpu]") {
  struct Case {
    Shape in;
    ops::UpsampleConfig cfg;
  };
  std::vector<Case> cases;
  ops::UpsampleConfig c;
  c.mode = ops::UpsampleMode::nearest;
  c.scale = {2, 3};
  cases.push_back({{2, 3, 4, 5}, c});
  c.scale = {2, 2, 2};
  cases.push_back({{1, 4, 3, 4, 5}, c});
  c.scale.clear();
  c.size = {7, 9};
  cases.push_back({{2, 3, 4, 5}, c});  // non-integer ratio
  c.mode = ops::UpsampleMode::bilinear;
  for (bool align : {false, true}) {
    c.align_corners = align;
    c.size = {11, 8};
    cases.push_back({{2, 5, 4, 5}, c});
    c.size.clear();
    c.scale = {4, 4};
    cases.push_back({{1, 6, 3, 5}, c});
    c.scale.clear();
  }
  for (const Case& k : cases) {
    for (MemoryFormat fmt : {MemoryFormat::channels_last, MemoryFormat::contiguous}) {
      for (DType dt : {DType::f32, DType::bf16}) {
        INFO(k.cfg.str() << " on " << to_string(k.in) << " " << name(dt)
                         << (fmt == MemoryFormat::channels_last ? " channels-last" : " contiguous"));
        const Tensor x = rounded(random_tensor(k.in, 70, fmt), dt);
        const Tensor y_ref = ops::upsample_forward(x, k.cfg);
        const Tensor y = ops::upsample_forward(on_gpu(x, dt), k.cfg);
        CHECK(y.memory_format() == fmt);
        CHECK(y.dtype() == dt);
        CHECK(rel_err(y, y_ref) < tol(dt));
        const Tensor gy = rounded(random_tensor(y_ref.shape(), 71, fmt), dt);
        const Tensor dx_ref = ops::upsample_backward(gy, k.in, k.cfg, fmt);
        const Tensor dx = ops::upsample_backward(on_gpu(gy, dt), k.in, k.cfg, fmt);
        CHECK(dx.memory_format() == fmt);
        CHECK(dx.dtype() == dt);
        CHECK(rel_err(dx, dx_ref) < tol(dt));
      }
    }
  }
}
