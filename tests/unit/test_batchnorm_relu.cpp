// BatchNorm with a fused ReLU (BatchNormNd::set_fused_relu): gradients against finite
// differences in f64, and the fast channels-last f32 kernels against BatchNorm followed by a
// separate ReLU layer (the composition it replaces) computed in f64.
#include <catch2/catch.hpp>

#include "gradcheck.hpp"
#include "halo/nn/activation.hpp"
#include "halo/nn/batchnorm.hpp"

using namespace halo;
using namespace halo::testing;

namespace {
void randomise_affine(nn::BatchNormNd& bn, uint64_t seed) {
  bn.weight().value.copy_(random_tensor({bn.channels()}, seed, bn.weight().value.dtype(), 0.5, 1.5));
  bn.bias().value.copy_(random_tensor({bn.channels()}, seed + 1, bn.weight().value.dtype(), -0.5, 0.5));
}
}  // namespace

TEST_CASE("fused batchnorm + relu gradients match finite differences (f64)", "[batchnorm]") {
  for (bool training : {true, false}) {
    INFO((training ? "training" : "eval"));
    nn::BatchNorm2d bn(4, 1e-5, 0.1, DType::f64);
    bn.set_name("bn_relu");
    bn.set_fused_relu(true);
    randomise_affine(bn, 5);
    bn.set_training(training);
    // Inputs spread so that no normalised value sits within the finite-difference step of
    // the ReLU's kink (the derivative is undefined there).
    check_layer_gradients(bn, {random_tensor({3, 4, 5, 6}, 6, DType::f64, -2, 3)});
  }
}

TEST_CASE("fused batchnorm + relu equals batchnorm then relu, fast f32 kernels included", "[batchnorm]") {
  for (const Shape& shape : {Shape{2, 32, 7, 9}, Shape{3, 5, 4, 6, 5}}) {
    for (MemoryFormat fmt : {MemoryFormat::channels_last, MemoryFormat::contiguous}) {
      INFO(to_string(shape) << (fmt == MemoryFormat::channels_last ? " channels-last" : " contiguous"));
      const int dims = int(shape.size()) - 2;
      const int64_t C = shape[1];
      nn::BatchNormNd fused(dims, C, 1e-5, 0.1, DType::f32), ref(dims, C, 1e-5, 0.1, DType::f64);
      fused.set_fused_relu(true);
      CHECK(fused.type() == (dims == 2 ? "BatchNorm2d+ReLU" : "BatchNorm3d+ReLU"));
      randomise_affine(ref, 21);
      fused.weight().value.copy_(ref.weight().value);
      fused.bias().value.copy_(ref.bias().value);
      nn::ReLU relu;
      Tensor x64 = random_tensor(shape, 22, DType::f64, -1, 3);
      Tensor g64 = random_tensor(shape, 23);
      Tensor x = x64.to(DType::f32).to_memory_format(fmt);
      for (bool training : {true, false}) {
        fused.set_training(training);
        ref.set_training(training);
        for (nn::BatchNormNd* bn : {static_cast<nn::BatchNormNd*>(&fused), &ref}) {
          bn->weight().grad.zero_();
          bn->bias().grad.zero_();
        }
        Tensor y = fused.forward(x);
        Tensor y_ref = relu.forward(ref.forward(x64));
        CHECK(y.memory_format() == fmt);
        CHECK(max_abs_diff(y, y_ref) < 2e-5);
        double negatives = 0;
        for (double v : y_ref.to_vector<double>()) negatives += v == 0.0;
        REQUIRE(negatives > 0.1 * double(y_ref.numel()));  // the mask matters
        Tensor dx = fused.backward(g64.to(DType::f32).to_memory_format(fmt))[0];
        Tensor dx_ref = ref.backward(relu.backward(g64)[0])[0];
        CHECK(dx.memory_format() == fmt);
        CHECK(max_abs_diff(dx, dx_ref) < 2e-5);
        CHECK(max_abs_diff(fused.weight().grad, ref.weight().grad) < 1e-3);
        CHECK(max_abs_diff(fused.bias().grad, ref.bias().grad) < 1e-3);
      }
    }
  }
}
