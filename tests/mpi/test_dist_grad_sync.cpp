// Data-parallel training: N ranks with local batch b must end with the same parameters as
// one replica with batch N*b; buckets in the same order on every rank; the first bucket's
// allreduce starting while backward still runs.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include "dist_test_model.hpp"
#include "halo/dist/grad_sync.hpp"
#include "halo/dist/model_sync.hpp"
#include "halo/util/timer.hpp"

using namespace halo;
using namespace halo::disttest;

namespace {

constexpr int64_t kIn = 5, kHidden = 7, kOut = 3;

// Largest |a - b| over all parameters of two models.
double max_param_diff(nn::Model& a, nn::Model& b) {
  auto pa = a.parameters(), pb = b.parameters();
  double d = 0;
  for (size_t k = 0; k < pa.size(); ++k) {
    auto va = pa[k]->value.to_vector<double>(), vb = pb[k]->value.to_vector<double>();
    for (size_t i = 0; i < va.size(); ++i) d = std::max(d, std::abs(va[i] - vb[i]));
  }
  return d;
}

// Largest difference of a parameter value between ranks (0 when all ranks agree bitwise).
double max_spread_across_ranks(const dist::Communicator& comm, nn::Model& m) {
  double spread = 0;
  for (nn::Parameter* p : m.parameters()) {
    auto v = p->value.to_vector<double>();
    std::vector<double> lo(v), hi(v);
    MPI_Allreduce(MPI_IN_PLACE, lo.data(), int(v.size()), MPI_DOUBLE, MPI_MIN, comm.comm());
    MPI_Allreduce(MPI_IN_PLACE, hi.data(), int(v.size()), MPI_DOUBLE, MPI_MAX, comm.comm());
    for (size_t i = 0; i < v.size(); ++i) spread = std::max(spread, hi[i] - lo[i]);
  }
  return spread;
}

// Trains `steps` steps on N ranks (k micro-batches of b rows each per step) and one
// replica on all N*k*b rows; returns the largest parameter difference.
template <class T>
double train_and_compare(bool adam, dist::GradSyncOptions opt, int steps, int64_t b) {
  dist::Communicator comm;
  const int n = comm.size(), r = comm.rank(), k = opt.accumulation_steps;
  // Each rank starts from different weights: the broadcast must make them rank 0's.
  auto replica = make_mlp<T>(kIn, kHidden, kOut, 100 + uint64_t(r));
  dist::broadcast_model(comm, *replica);
  auto reference = make_mlp<T>(kIn, kHidden, kOut, 100);
  REQUIRE(max_param_diff(*replica, *reference) == 0.0);

  dist::GradientSynchronizer sync(comm, replica->parameters(), opt);
  sync.attach(*replica);
  TestOptimizer<T> opt_dist, opt_ref;
  opt_dist.adam = opt_ref.adam = adam;
  if (adam) opt_dist.lr = opt_ref.lr = 0.01;
  const int64_t global = int64_t(n) * k * b;
  for (int s = 0; s < steps; ++s) {
    replica->zero_grad();
    for (int j = 0; j < k; ++j) {
      int64_t begin = s * global + (int64_t(j) * n + r) * b;
      Tensor x = make_rows<T>(begin, begin + b, kIn, 1), t = make_rows<T>(begin, begin + b, kOut, 2);
      int64_t collectives_before = comm.watchdog().entered();
      Tensor y = replica->forward(x);
      replica->backward(mse_grad<T>(y, t));
      bool stepped = sync.wait();
      REQUIRE(stepped == (j == k - 1));
      // Accumulating micro-batches communicate nothing.
      if (j < k - 1) REQUIRE(comm.watchdog().entered() == collectives_before);
    }
    opt_dist.step(replica->parameters());

    reference->zero_grad();
    Tensor x = make_rows<T>(s * global, (s + 1) * global, kIn, 1);
    Tensor t = make_rows<T>(s * global, (s + 1) * global, kOut, 2);
    Tensor y = reference->forward(x);
    reference->backward(mse_grad<T>(y, t));
    opt_ref.step(reference->parameters());
  }
  REQUIRE(max_spread_across_ranks(comm, *replica) == 0.0);  // ranks never disagree
  double d = max_param_diff(*replica, *reference);
  double moved = max_param_diff(*reference, *make_mlp<T>(kIn, kHidden, kOut, 100));
  REQUIRE(moved > 1e-3);  // training really changed the weights
  return d;
}

dist::GradSyncOptions small_buckets() {
  dist::GradSyncOptions o;
  o.first_bucket_bytes = 64;  // several buckets even for this tiny model
  o.bucket_bytes = 256;
  return o;
}

}  // namespace

// Tolerance: f64 sums in a different order differ by a few ulps per step; after 5 steps
// of SGD or Adam the parameters agree to 1e-12 (absolute, parameters are O(1)).
TEST_CASE("N ranks with batch b match one replica with batch N*b: SGD, f64", "[dist][grad_sync]") {
  REQUIRE(train_and_compare<double>(false, small_buckets(), 5, 3) < 1e-12);
}

TEST_CASE("N ranks with batch b match one replica with batch N*b: Adam, f64", "[dist][grad_sync]") {
  REQUIRE(train_and_compare<double>(true, small_buckets(), 5, 3) < 1e-12);
}

TEST_CASE("default buckets, one bucket for the whole model, and inline progress give the same result",
          "[dist][grad_sync]") {
  dist::GradSyncOptions one_bucket;  // 1 MB first bucket holds this whole model
  REQUIRE(train_and_compare<double>(false, one_bucket, 3, 2) < 1e-12);
  dist::GradSyncOptions inline_progress = small_buckets();
  inline_progress.progress_thread = false;
  REQUIRE(train_and_compare<double>(true, inline_progress, 3, 2) < 1e-12);
}

TEST_CASE("gradient accumulation over k micro-batches equals one batch of N*k*b", "[dist][grad_sync]") {
  dist::GradSyncOptions o = small_buckets();
  o.accumulation_steps = 3;
  REQUIRE(train_and_compare<double>(false, o, 3, 2) < 1e-12);
}

// f32: sums in a different order differ by ~1e-7 relative; bf16 on the wire rounds each
// gradient to 8 bits of mantissa (relative 2^-9 per value and per addition).
TEST_CASE("f32 gradients, and bf16 compression on the wire", "[dist][grad_sync]") {
  REQUIRE(train_and_compare<float>(false, small_buckets(), 4, 3) < 2e-5);
  dist::GradSyncOptions o = small_buckets();
  o.compress_bf16 = true;
  REQUIRE(train_and_compare<float>(false, o, 4, 3) < 5e-3);
}

TEST_CASE("bucket layout: reverse definition order, small first bucket, identical on every rank",
          "[dist][grad_sync]") {
  dist::Communicator comm;
  // Different sizes on different ranks would break this; the layout depends only on the model.
  auto m = make_mlp<float>(kIn, 64, kOut, 1);
  dist::GradSyncOptions o;
  o.first_bucket_bytes = 100;
  o.bucket_bytes = 4096;
  dist::GradientSynchronizer sync(comm, m->parameters(), o);
  const auto& b = sync.buckets();
  REQUIRE(b.size() >= 3);
  REQUIRE(b[0].params.front() == "fc3/bias");  // the last layer's gradients are ready first
  REQUIRE(b.back().params.back() == "fc1/weight");
  for (size_t i = 1; i < b.size(); ++i)
    REQUIRE((b[i].bytes <= o.bucket_bytes || b[i].params.size() == 1));
  REQUIRE(b[0].bytes <= o.first_bucket_bytes);
  uint64_t h[2] = {sync.layout_hash(), ~sync.layout_hash()};
  MPI_Allreduce(MPI_IN_PLACE, h, 2, MPI_UINT64_T, MPI_MIN, comm.comm());
  REQUIRE(h[0] == sync.layout_hash());
  REQUIRE(~h[1] == sync.layout_hash());
}

TEST_CASE("the first bucket's allreduce starts before backward ends (overlap)", "[dist][grad_sync]") {
  dist::Communicator comm;
  // 40 ms of simulated compute per dense layer's backward: fc3 finishes first, then fc2
  // and fc1 take 80 ms more, during which bucket 0 (fc3) must already be on the wire.
  auto m = make_mlp<float>(16, 32, 4, 7, 0.04);
  dist::GradSyncOptions o;
  o.first_bucket_bytes = 1024;
  o.bucket_bytes = 4096;
  dist::GradientSynchronizer sync(comm, m->parameters(), o);
  sync.attach(*m);
  REQUIRE(sync.uses_progress_thread());
  for (int step = 0; step < 2; ++step) {
    m->zero_grad();
    Tensor x = make_rows<float>(0, 4, 16, 3), t = make_rows<float>(0, 4, 4, 4);
    Tensor y = m->forward(x);
    double backward_start = now_seconds();
    m->backward(mse_grad<float>(y, t));
    double backward_end = now_seconds();
    REQUIRE(sync.wait());
    auto times = sync.last_times();
    REQUIRE(times.size() >= 2);
    INFO("backward " << backward_end - backward_start << " s; bucket 0 ready +" << times[0].ready - backward_start
                     << " start +" << times[0].start - backward_start << " end +" << times[0].end - backward_start);
    REQUIRE(times[0].ready >= backward_start);
    REQUIRE(times[0].start >= times[0].ready);
    REQUIRE(times[0].start < backward_end - 0.02);  // posted well before backward ended
    for (size_t i = 1; i < times.size(); ++i) REQUIRE(times[i].start >= times[i - 1].start);
  }
}
