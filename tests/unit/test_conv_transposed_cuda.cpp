// Transposed convolutions on the GPU (cuDNN, with the roles of the passes swapped) against
// the CPU reference kernels on random data: forward with bias and fused activation, backward
// data and backward weights (with the bias gradient, accumulating); 2-D and 3-D; stride,
// padding, output_padding, dilation and groups; channels-last and contiguous inputs; f32
// (strict, 1e-5) and bf16 (two chained roundings, 6e-2 as for the direct convolution).
#include <catch2/catch.hpp>

#include "cuda_test_util.hpp"
#include "gpu_test_skip.hpp"
#include "halo/nn/conv.hpp"
#include "halo/ops/conv.hpp"

using namespace halo;
using namespace halo_cuda_test;

namespace {

double conv_tol(DType dt) { return dt == DType::bf16 ? 6e-2 : 1e-5; }

struct Case {
  Shape x, w;  // w = (Cin, Cout / groups, k...)
  std::vector<int64_t> stride, pad, out_pad, dil;
  int64_t groups;
  ops::ConvEpilogue epilogue;
  bool bias;
};

ops::ConvParams params_of(const Case& c) {
  ops::ConvParams p;
  p.spatial_dims = int(c.x.size()) - 2;
  p.stride = c.stride;
  p.padding = c.pad;
  p.output_padding = c.out_pad;
  p.dilation = c.dil;
  p.groups = c.groups;
  p.transposed = true;
  return p;
}

void check_case(const Case& c, DType dt, MemoryFormat fmt, uint32_t seed) {
  const ops::ConvParams p = params_of(c);
  ops::ConvPlan cpu(c.x, c.w, p, DType::f32, Device::cpu(), c.epilogue, c.bias, ops::ConvBackend::reference);
  ops::ConvPlan dev(c.x, c.w, p, dt, gpu, c.epilogue, c.bias);
  REQUIRE(dev.output_shape() == cpu.output_shape());
  const Shape ys = cpu.output_shape();
  const int64_t cout = ys[1];
  // The reference sees the values the GPU sees (rounded to dt).
  const Tensor x = rounded(random_tensor(c.x, seed, fmt), dt);
  const Tensor w = random_tensor(c.w, seed + 1);
  const Tensor b = c.bias ? random_tensor({cout}, seed + 2) : Tensor();
  const Tensor y_ref = ops::conv_forward(cpu, x, w, b);
  const Tensor y = ops::conv_forward(dev, on_gpu(x, dt), w.to(gpu), c.bias ? b.to(gpu) : Tensor());
  CHECK(y.dtype() == dt);
  CHECK(y.shape() == ys);
  CHECK(rel_err(y, y_ref) < conv_tol(dt));

  const Tensor gy = random_tensor(ys, seed + 3, fmt);
  const Tensor gpre_ref = ops::activation_backward(gy, y_ref, c.epilogue);
  const Tensor gpre = ops::activation_backward(on_gpu(gy, dt), y, c.epilogue);
  const Tensor gpre_r = rounded(gpre.to(Device::cpu()), dt);
  const Tensor gx = ops::conv_backward_data(dev, gpre, w.to(gpu));
  CHECK(gx.shape() == c.x);
  CHECK(rel_err(gx, ops::conv_backward_data(cpu, gpre_r, w)) < conv_tol(dt));

  // Accumulates into gradients that already hold values (micro-batches).
  Tensor gw_ref = random_tensor(c.w, seed + 4), gb_ref = random_tensor({cout}, seed + 5);
  Tensor gw = gw_ref.to(gpu), gb = gb_ref.to(gpu);
  ops::conv_backward_weights(cpu, x, gpre_r, gw_ref, c.bias ? gb_ref : Tensor(), true);
  ops::conv_backward_weights(dev, on_gpu(x, dt), gpre, gw, c.bias ? gb : Tensor(), true);
  CHECK(gw.dtype() == DType::f32);
  CHECK(rel_err(gw, gw_ref) < conv_tol(dt));
  if (c.bias) CHECK(rel_err(gb, gb_ref) < conv_tol(dt));
  // Overwriting as well.
  ops::conv_backward_weights(cpu, x, gpre_r, gw_ref, Tensor(), false);
  ops::conv_backward_weights(dev, on_gpu(x, dt), gpre, gw, Tensor(), false);
  CHECK(rel_err(gw, gw_ref) < conv_tol(dt));
}

}  // namespace

TEST_CASE("cuda transposed convolutions match the CPU reference in both layouts, f32 and bf16") {
  const ops::ConvEpilogue none{}, relu{ops::Activation::relu}, leaky{ops::Activation::leaky_relu, 0.2};
  const std::vector<Case> cases = {
      // 3-D upsampling by 2 with output_padding (decoder of a 3-D U-Net).
      {{2, 8, 4, 5, 3}, {8, 4, 3, 3, 3}, {2, 2, 2}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, 1, leaky, true},
      // 3-D stride 1, dilation, groups, mixed kernel sizes.
      {{2, 8, 4, 3, 5}, {8, 3, 2, 3, 2}, {1, 1, 1}, {0, 1, 0}, {0, 0, 0}, {2, 1, 2}, 2, none, false},
      // 3-D per-axis stride, padding and output_padding.
      {{1, 4, 3, 4, 5}, {4, 6, 3, 2, 3}, {3, 2, 1}, {1, 0, 1}, {2, 1, 0}, {1, 1, 1}, 1, relu, true},
      // 2-D DeepLabv3+ decoder: 3x3, stride 2, padding 1, output_padding 1 doubles H and W.
      {{2, 16, 6, 5}, {16, 8, 3, 3}, {2, 2}, {1, 1}, {1, 1}, {1, 1}, 1, none, false},
      // 2-D 4x4 stride-2 upsampling.
      {{2, 16, 5, 6}, {16, 8, 4, 4}, {2, 2}, {1, 1}, {0, 0}, {1, 1}, 1, relu, true},
      // 2-D stride 3 with output_padding 2, grouped.
      {{2, 8, 4, 5}, {8, 2, 3, 3}, {3, 3}, {2, 1}, {2, 1}, {1, 1}, 4, none, true},
      // 2-D per-axis stride, dilation and output_padding.
      {{3, 6, 5, 4}, {6, 5, 3, 3}, {2, 1}, {0, 1}, {1, 0}, {1, 2}, 1, leaky, false},
  };
  uint32_t seed = 500;
  for (size_t i = 0; i < cases.size(); ++i)
    for (DType dt : {DType::f32, DType::bf16})
      for (MemoryFormat fmt : {MemoryFormat::channels_last, MemoryFormat::contiguous}) {
        INFO("case " << i << " " << name(dt) << (fmt == MemoryFormat::channels_last ? " channels_last" : " contiguous"));
        check_case(cases[i], dt, fmt, seed);
        seed += 10;
      }
}

TEST_CASE("cuda transposed convolution names the layer when output_padding has no GPU mapping") {
  // output_padding 1 at stride 1 is valid (dilation 2) but the adjoint direct convolution
  // would not map back onto the input.
  ops::ConvParams p = ops::ConvParams::uniform(2, 1, 0, 2, 1, true, 1);
  CHECK_THROWS_AS(ops::ConvPlan({1, 4, 5, 5}, {4, 4, 3, 3}, p, DType::f32, gpu, {}, false,
                                ops::ConvBackend::automatic, "ConvTranspose2d 'up1'"),
                  ConfigError);
  CHECK_THROWS_WITH(ops::ConvPlan({1, 4, 5, 5}, {4, 4, 3, 3}, p, DType::f32, gpu, {}, false,
                                  ops::ConvBackend::automatic, "ConvTranspose2d 'up1'"),
                    Catch::Contains("ConvTranspose2d 'up1'") && Catch::Contains("output_padding < stride"));
  // The same layer without output_padding runs.
  p.output_padding = {0, 0};
  ops::ConvPlan ok({1, 4, 5, 5}, {4, 4, 3, 3}, p, DType::f32, gpu);
  const Tensor y = ops::conv_forward(ok, random_tensor({1, 4, 5, 5}, 3).to(gpu), random_tensor({4, 4, 3, 3}, 4).to(gpu));
  CHECK(y.shape() == Shape{1, 4, 9, 9});
}

TEST_CASE("cuda ConvTranspose2d layer of the DeepLabv3+ decoder gives the CPU's output and gradients") {
  nn::ConvOptions o;
  o.stride = 2;
  o.padding = 1;
  o.output_padding = 1;
  o.bias = true;
  nn::ConvTranspose2d layer(16, 8, 3, o);
  layer.init_parameters(11);
  layer.set_training(true);
  // Non-zero bias, so its gradient and the forward's bias add are both exercised.
  layer.parameters().at(1).value.copy_(random_tensor({8}, 12));
  const Tensor x = random_tensor({2, 16, 6, 7}, 13, MemoryFormat::channels_last);
  const Tensor gy = random_tensor({2, 8, 12, 14}, 14, MemoryFormat::channels_last);
  const Tensor y_ref = layer.forward(x);
  const Tensor gx_ref = layer.backward(gy).at(0);
  const Tensor gw_ref = layer.parameters().at(0).grad.clone(), gb_ref = layer.parameters().at(1).grad.clone();
  for (auto& p : layer.parameters()) p.grad.zero_();
  layer.to(gpu);
  const Tensor y = layer.forward(x.to(gpu));
  CHECK(y.device() == gpu);
  CHECK(rel_err(y, y_ref) < 1e-5);
  CHECK(rel_err(layer.backward(gy.to(gpu)).at(0), gx_ref) < 1e-5);
  CHECK(rel_err(layer.parameters().at(0).grad, gw_ref) < 1e-5);
  CHECK(rel_err(layer.parameters().at(1).grad, gb_ref) < 1e-5);
}
