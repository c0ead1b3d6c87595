// The weighted cross-entropy's CUDA branch against the CPU implementation on random logits:
// both layouts, f32 and bf16 logits, i32 and i64 labels with ignored pixels and class
// weights, and the error naming the first invalid label.
#include "cuda_test_util.hpp"
#include "gpu_test_skip.hpp"
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
