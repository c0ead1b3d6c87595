// The IoU confusion counts and MAE on the GPU against the CPU on random inputs: both
// layouts, f32 and bf16 logits, i32 and i64 labels with ignored pixels, and the error naming
// the first invalid label.
#include "cuda_test_util.hpp"
#include "gpu_test_skip.hpp"
#include "halo/ops/metrics.hpp"

using namespace halo;
using namespace halo_cuda_test;

TEST_CASE("cuda IoU confusion counts match the CPU", "[metrics][gpu]") {
  for (const Shape& shape : {Shape{3, 3, 16, 24}, Shape{2, 7, 5, 6}, Shape{10, 4}}) {
    for (MemoryFormat fmt : {MemoryFormat::channels_last, MemoryFormat::contiguous}) {
      for (DType dt : {DType::f32, DType::bf16}) {
        for (bool i64 : {false, true}) {
          INFO(to_string(shape) << (fmt == MemoryFormat::channels_last ? " channels-last " : " contiguous ")
                                << name(dt) << (i64 ? " i64" : " i32"));
          if (shape.size() == 2 && fmt == MemoryFormat::channels_last) continue;
          const int64_t K = shape[1];
          Shape ls = shape;
          ls.erase(ls.begin() + 1);
          const Tensor labels = i64 ? random_labels<int64_t>(ls, K, 5, -100) : random_labels<int32_t>(ls, K, 5, -100);
          // The GPU sees the rounded values; ties after bf16 rounding go to the first class on both sides.
          const Tensor logits = rounded(random_tensor(shape, 6, fmt), dt);
          const ops::IoUCounts ref = ops::iou_counts(logits, labels);
          const ops::IoUCounts got = ops::iou_counts(on_gpu(logits, dt), labels.to(gpu));
          CHECK(got.intersection == ref.intersection);
          CHECK(got.union_ == ref.union_);
          CHECK(got.samples == ref.samples);
          CHECK(got.sample_iou_sum == Approx(ref.sample_iou_sum).epsilon(1e-12));
        }
      }
    }
  }
  // More classes than the shared-memory counters hold: the global-atomic path.
  const Tensor logits = random_tensor({2, 1100, 3, 2}, 7, MemoryFormat::channels_last);
  const Tensor labels = random_labels<int32_t>({2, 3, 2}, 1100, 8, -100);
  const ops::IoUCounts ref = ops::iou_counts(logits, labels);
  const ops::IoUCounts got = ops::iou_counts(logits.to(gpu), labels.to(gpu));
  CHECK(got.intersection == ref.intersection);
  CHECK(got.union_ == ref.union_);
}

TEST_CASE("cuda IoU names the first invalid label like the CPU", "[metrics][gpu]") {
  const Tensor logits = random_tensor({2, 3, 4, 5}, 9);
  std::vector<int64_t> v(40, 0);
  v[27] = 5;
  v[33] = -2;
  const Tensor labels = Tensor::from_vector(v, {2, 4, 5});
  CHECK_THROWS_WITH(ops::iou_counts(logits, labels), Catch::Contains("sample 1 pixel 7"));
  CHECK_THROWS_WITH(ops::iou_counts(logits.to(gpu), labels.to(gpu)),
                    Catch::Contains("sample 1 pixel 7") && Catch::Contains("label 5"));
}

TEST_CASE("cuda MAE matches the CPU in any layout, bf16 predictions included", "[metrics][gpu]") {
  const Tensor p = random_tensor({2, 3, 4, 5, 6}, 10, MemoryFormat::channels_last);
  const Tensor t = random_tensor({2, 3, 4, 5, 6}, 11);
  const ops::SumCount ref = ops::mae(p, t);
  const ops::SumCount got = ops::mae(p.to(gpu), t.to(gpu));
  CHECK(got.count == ref.count);
  CHECK(got.sum == Approx(ref.sum).epsilon(1e-10));
  const ops::SumCount ref16 = ops::mae(rounded(p, DType::bf16), t);
  const ops::SumCount got16 = ops::mae(on_gpu(p, DType::bf16), t.to(gpu));
  CHECK(got16.sum == Approx(ref16.sum).epsilon(1e-10));
}
