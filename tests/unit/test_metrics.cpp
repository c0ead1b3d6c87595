#include <catch2/catch.hpp>

#include "gradcheck.hpp"
#include "halo/ops/metrics.hpp"

using namespace halo;

namespace {
/// Logits (N, K, 1, W) whose arg-max is `pred` (class k gets 1, the rest 0).
Tensor one_hot_logits(const std::vector<int>& pred, int64_t N, int64_t K) {
  const int64_t W = int64_t(pred.size()) / N;
  std::vector<float> v(size_t(N * K * W), 0.f);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t w = 0; w < W; ++w) v[size_t((n * K + pred[size_t(n * W + w)]) * W + w)] = 1.f;
  return Tensor::from_vector<float>(v, {N, K, 1, W});
}
}  // namespace

TEST_CASE("MAE returns sum and count; merging shards is exact") {
  Tensor p = Tensor::from_vector<float>({1, 2, 3, 4, 5}, {5});
  Tensor t = Tensor::from_vector<float>({0, 2, 5, 4, 8}, {5});
  ops::SumCount all = ops::mae(p, t);
  CHECK(all.sum == 6.0);
  CHECK(all.count == 5.0);
  CHECK(all.mean() == Approx(1.2));
  // uneven shards: 2 + 3 samples; averaging the shard means would give 1.75, not 1.2
  ops::SumCount a = ops::mae(p.slice(0, 2), t.slice(0, 2)), b = ops::mae(p.slice(2, 5), t.slice(2, 5));
  a.merge(b);
  CHECK(a.mean() == Approx(1.2));
  CHECK(ops::SumCount{}.mean() == 0.0);
  CHECK_THROWS_AS(ops::mae(p, Tensor::zeros({4})), ShapeError);
}

TEST_CASE("IoU on a hand-computed example with an absent class and ignore_index") {
  // Two samples, 3 classes, 4 pixels each; label 9 is ignored.
  //   sample 0: pred 0 0 1 1, label 0 1 1 9 -> class 0: I=1 U=2; class 1: I=1 U=2 (pixel 3 ignored);
  //             class 2 absent from both -> 1. Sample IoU (0.5 + 0.5 + 1) / 3.
  //   sample 1: pred 2 2 2 0, label 2 2 0 0 -> class 0: I=1 U=2; class 1 absent -> 1; class 2: I=2 U=3.
  Tensor logits = one_hot_logits({0, 0, 1, 1, 2, 2, 2, 0}, 2, 3);
  Tensor labels = Tensor::from_vector<int64_t>({0, 1, 1, 9, 2, 2, 0, 0}, {2, 1, 4});
  ops::IoUCounts c = ops::iou_counts(logits, labels, 9);
  CHECK(c.intersection == std::vector<double>{2, 1, 2});
  CHECK(c.union_ == std::vector<double>{4, 2, 3});
  CHECK(c.samples == 2);
  const double s0 = (0.5 + 0.5 + 1.0) / 3, s1 = (0.5 + 1.0 + 2.0 / 3) / 3;
  CHECK(c.mean_sample_iou() == Approx((s0 + s1) / 2));
  CHECK(c.class_iou(0) == Approx(0.5));
  CHECK(c.class_iou(2) == Approx(2.0 / 3));
  CHECK(c.mean_class_iou() == Approx((0.5 + 0.5 + 2.0 / 3) / 3));

  // Per-sample shards merged (through pack/unpack, as an allreduce would) give the same.
  ops::IoUCounts a = ops::iou_counts(logits.slice(0, 1), labels.slice(0, 1), 9);
  ops::IoUCounts b = ops::iou_counts(logits.slice(1, 2), labels.slice(1, 2).to(DType::i32), 9);
  CHECK(a.mean_sample_iou() == Approx(s0));
  std::vector<double> pa = a.pack(), pb = b.pack();
  for (size_t i = 0; i < pa.size(); ++i) pa[i] += pb[i];
  ops::IoUCounts m = ops::IoUCounts::unpack(pa, 3);
  CHECK(m.pack() == c.pack());
  ops::IoUCounts merged;
  merged.merge(a);
  merged.merge(b);
  CHECK(merged.pack() == c.pack());

  // Channels-last logits give identical counts.
  CHECK(ops::iou_counts(logits.to_memory_format(MemoryFormat::channels_last), labels, 9).pack() == c.pack());

  // A perfect prediction with class 2 absent everywhere scores 1.
  auto perfect = ops::iou_counts(one_hot_logits({0, 1, 0, 1}, 1, 3), Tensor::from_vector<int32_t>({0, 1, 0, 1}, {1, 1, 4}));
  CHECK(perfect.mean_sample_iou() == 1.0);
  CHECK(perfect.union_[2] == 0.0);
  CHECK(perfect.mean_class_iou() == 1.0);
}

TEST_CASE("IoU errors name the shapes and bad labels") {
  Tensor logits = Tensor::zeros({2, 3, 4, 4});
  CHECK_THROWS_WITH(ops::iou_counts(logits, Tensor::zeros({2, 4, 3}, DType::i64)),
                    Catch::Contains("[2,4,3]") && Catch::Contains("[2,4,4]"));
  Tensor bad = Tensor::zeros({2, 4, 4}, DType::i32);
  bad.data<int32_t>()[16 + 2] = 7;
  CHECK_THROWS_WITH(ops::iou_counts(logits, bad), Catch::Contains("label 7 at sample 1 pixel 2"));
}

TEST_CASE("IoU counts on large random data match a plain count") {
  // Large enough for the parallel loop; a plain serial count is the reference.
  const int64_t N = 2, K = 3, H = 64, W = 96;
  Tensor logits = testing::random_tensor({N, K, H, W}, 3, DType::f32);
  CounterRng rng(4);
  std::vector<int32_t> lv(size_t(N * H * W));
  for (size_t i = 0; i < lv.size(); ++i) lv[i] = rng.uniform(i) < 0.1 ? -1 : int32_t(rng.uniform(i + 77777) * 3);
  Tensor labels = Tensor::from_vector<int32_t>(lv, {N, H, W});
  ops::IoUCounts c = ops::iou_counts(logits.to_memory_format(MemoryFormat::channels_last), labels, -1);
  auto x = logits.to_vector<float>();
  std::vector<double> inter(3, 0), uni(3, 0);
  const int64_t S = H * W;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t s = 0; s < S; ++s) {
      const int y = lv[size_t(n * S + s)];
      if (y < 0) continue;
      int best = 0;
      for (int k = 1; k < K; ++k)
        if (x[size_t((n * K + k) * S + s)] > x[size_t((n * K + best) * S + s)]) best = k;
      if (best == y) inter[size_t(y)] += 1, uni[size_t(y)] += 1;
      else uni[size_t(y)] += 1, uni[size_t(best)] += 1;
    }
  CHECK(c.intersection == inter);
  CHECK(c.union_ == uni);
}
