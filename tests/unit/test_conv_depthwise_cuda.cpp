// Depthwise (groups == channels) 2-D and 3-D convolutions through the cuDNN plan against the
// CPU reference: forward with bias and relu, backward data and backward weights, f32 and bf16,
// dilated and strided.
#include "cuda_test_util.hpp"
#include "gpu_test_skip.hpp"
#include "halo/ops/conv.hpp"
#include "halo/ops/elementwise.hpp"

using namespace halo;
using namespace halo_cuda_test;

TEST_CASE("cuda depthwise convolutions match the CPU reference", "[conv][gpu]") {
  struct Case {
    Shape x, w;
    ops::ConvParams p;
  };
  const std::vector<Case> cases = {
      {{2, 8, 9, 11}, {8, 1, 3, 3}, ops::ConvParams::uniform(2, 1, 1, 1, 8)},
      {{2, 8, 12, 10}, {8, 1, 3, 3}, ops::ConvParams::uniform(2, 1, 2, 2, 8)},  // dilated (ASPP)
      {{1, 6, 9, 9}, {6, 1, 3, 3}, ops::ConvParams::uniform(2, 2, 1, 1, 6)},    // strided
      {{1, 4, 6, 5, 7}, {4, 1, 3, 3, 3}, ops::ConvParams::uniform(3, 1, 1, 1, 4)},
  };
  for (const Case& k : cases) {
    for (DType dt : {DType::f32, DType::bf16}) {
      INFO(to_string(k.x) << " " << k.p.str() << " " << name(dt));
      const ops::ConvEpilogue e{ops::Activation::relu, 0.0};
      const int64_t C = k.x[1];
      const Tensor x = rounded(random_tensor(k.x, 1, MemoryFormat::channels_last), dt);
      const Tensor w = rounded(random_tensor(k.w, 2), dt), b = random_tensor({C}, 3);
      ops::ConvPlan cpu(k.x, k.w, k.p, DType::f32, Device::cpu(), e, true, ops::ConvBackend::reference);
      ops::ConvPlan dev(k.x, k.w, k.p, dt, gpu, e, true);
      const Tensor y_ref = ops::conv_forward(cpu, x, w, b);
      const Tensor y = ops::conv_forward(dev, on_gpu(x, dt), w.to(gpu), b.to(gpu));
      CHECK(rel_err(y, y_ref) < tol(dt));
      // The CPU backward uses the GPU's output for the relu mask, so both sides mask alike.
      const Tensor y_seen = y.to(Device::cpu()).to(DType::f32);
      const Tensor gy = random_tensor(y_ref.shape(), 4);
      const Tensor gpre_ref = ops::activation_backward(gy, y_seen, e);
      const Tensor gpre = ops::activation_backward(on_gpu(gy, dt), y, e);
      const Tensor gpre_seen = gpre.to(Device::cpu()).to(DType::f32);
      CHECK(rel_err(ops::conv_backward_data(dev, gpre, w.to(gpu)), ops::conv_backward_data(cpu, gpre_seen, w)) <
            tol(dt));
      Tensor gw_ref = Tensor::zeros(k.w), gb_ref = Tensor::zeros({C});
      Tensor gw = Tensor::zeros(k.w, DType::f32, gpu), gb = Tensor::zeros({C}, DType::f32, gpu);
      ops::conv_backward_weights(cpu, x, gpre_seen, gw_ref, gb_ref, false);
      ops::conv_backward_weights(dev, on_gpu(x, dt), gpre, gw, gb, false);
      CHECK(rel_err(gw, gw_ref) < (dt == DType::bf16 ? 2e-2 : 1e-5));
      CHECK(rel_err(gb, gb_ref) < 1e-5);
    }
  }
}
