// The weighted cross-entropy's CUDA branch against the CPU implementation on random logits:
// both layouts, f32 and bf16 logits, i32 and i64 labels with ignored pixels and class
// weights, and the error naming the first invalid label.
#include "cuda_test_util.hpp"
#include "gpu_test_skip.hpp"
#include "halo/nn/losses.hpp"
#include "halo/ops/loss.hpp"

using namespace halo;
using namespace halo_cuda_test;

TEST_CASE("cuda weighted cross-entropy matches the CPU", "[loss][gpu]") {
  const int64_t K = 5;
  for (const Shape& shape : {Shape{2, K, 6, 7}, Shape{9, K}, Shape{2, K, 3, 4, 5}}) {
    for (MemoryFormat fmt : {MemoryFormat::channels_last, MemoryFormat::contiguous}) {
      for (DType dt : {DType::f32, DType::bf16}) {
        for (bool i64 : {false, true}) {
          for (bool weighted : {false, true}) {
            INFO(to_string(shape) << (fmt == MemoryFormat::channels_last ? " channels-last " : " contiguous ")
                                  << name(dt) << (i64 ? " i64" : " i32") << (weighted ? " weighted" : ""));
            if (shape.size() == 2 && fmt == MemoryFormat::channels_last) continue;
            ops::CrossEntropyOptions o;
            o.ignore_index = -1;
            if (weighted) o.class_weights = {0.5, 2.0, 1.0, 3.5, 0.25};
            Shape ls = shape;
            ls.erase(ls.begin() + 1);
            const Tensor labels = i64 ? random_labels<int64_t>(ls, K, 31, -1) : random_labels<int32_t>(ls, K, 31, -1);
            const Tensor logits = random_tensor(shape, 32, fmt, 0.f, 3.f);
            const Tensor lr = rounded(logits, dt);
            const ops::CrossEntropySums ref = ops::cross_entropy_forward(lr, labels, o);
            const ops::CrossEntropySums got = ops::cross_entropy_forward(on_gpu(logits, dt), labels.to(gpu), o);
            CHECK(got.loss == Approx(ref.loss).epsilon(1e-5));
            CHECK(got.weight == Approx(ref.weight).epsilon(1e-12));
            const double scale = 1.0 / ref.weight;
            const Tensor g_ref = ops::cross_entropy_backward(lr, labels, o, scale);
            const Tensor g = ops::cross_entropy_backward(on_gpu(logits, dt), labels.to(gpu), o, scale);
            CHECK(g.dtype() == dt);
            CHECK(g.device() == gpu);
            CHECK(g.memory_format() == g_ref.memory_format());
            CHECK(rel_err(g, g_ref) < tol(dt));
          }
        }
      }
    }
  }
}

TEST_CASE("cuda cross-entropy names the first invalid label like the CPU", "[loss][gpu]") {
  const Shape shape{2, 3, 4, 5};
  const Tensor logits = random_tensor(shape, 41, MemoryFormat::channels_last);
  std::vector<int32_t> v(40, 1);
  v[17] = 3;
  v[30] = -7;
  const Tensor labels = Tensor::from_vector(v, {2, 4, 5});
  CHECK_THROWS_WITH(ops::cross_entropy_forward(logits, labels, {}), Catch::Contains("flat position 17"));
  CHECK_THROWS_WITH(ops::cross_entropy_forward(logits.to(gpu), labels.to(gpu), {}),
                    Catch::Contains("flat position 17") && Catch::Contains("label 3"));
}

TEST_CASE("the cross-entropy gradient formed on the GPU equals forward then backward; bad labels come later",
          "[loss][gpu]") {
  // WeightedCrossEntropy::gradient on a GPU normalises on the device (no host round trip,
  // so a CUDA graph can capture it) and leaves a bad label for check_labels() / forward().
  const int64_t K = 3;
  for (MemoryFormat fmt : {MemoryFormat::channels_last, MemoryFormat::contiguous}) {
    for (DType dt : {DType::f32, DType::bf16}) {
      INFO((fmt == MemoryFormat::channels_last ? "channels-last " : "contiguous ") << name(dt));
      const Tensor logits = random_tensor({2, K, 6, 7}, 50, fmt);
      const Tensor labels = random_labels<int32_t>({2, 6, 7}, K, 51, -100);
      nn::WeightedCrossEntropy ref({1.0, 20.0, 3.0}), dev({1.0, 20.0, 3.0});
      ref.forward(on_gpu(logits, dt), labels.to(gpu));
      const Tensor g_ref = ref.backward();
      const Tensor g = dev.gradient(on_gpu(logits, dt), labels.to(gpu));
      CHECK(g.dtype() == dt);
      CHECK(g.device() == gpu);
      CHECK(rel_err(g, g_ref) < (dt == DType::bf16 ? 1e-2 : 1e-6));
      CHECK_NOTHROW(dev.check_labels());
    }
  }
  Tensor bad = random_labels<int32_t>({2, 6, 7}, K, 52, -100);
  bad.data<int32_t>()[17] = 7;
  nn::WeightedCrossEntropy dev({1.0, 20.0, 3.0});
  const Tensor logits = random_tensor({2, K, 6, 7}, 53).to(gpu);
  Tensor g;
  CHECK_NOTHROW(g = dev.gradient(logits, bad.to(gpu)));  // not thrown here: the device cannot
  const std::vector<float> gv = g.to_vector<float>();   // (2, 3, 6, 7): pixel 17 is n 0, s 17
  for (int64_t k = 0; k < K; ++k) CHECK(gv[size_t(k * 42 + 17)] == 0.f);  // no gradient from it
  CHECK_THROWS_WITH(dev.check_labels(), Catch::Contains("flat position 17") && Catch::Contains("outside [0, 3)"));
  CHECK_NOTHROW(dev.check_labels());  // reported once
}
