// Communicator, start-up checks and broadcast, metric reductions, BatchNorm statistics
// reducers, and the watchdog's report (the abort itself is tested in tests/dist).
#include <catch2/catch.hpp>

#include <cstring>

#include "dist_test_model.hpp"
#include "halo/dist/communicator.hpp"
#include "halo/dist/metrics.hpp"
#include "halo/dist/model_sync.hpp"
#include "halo/dist/sync_batchnorm.hpp"

using namespace halo;
using namespace halo::disttest;

TEST_CASE("communicator over a host-initialised MPI and over a sub-communicator", "[dist][comm]") {
  // The test main initialised MPI, as a host application would: the session must not own it.
  dist::MpiSession session;
  REQUIRE_FALSE(session.owns_mpi());
  REQUIRE(session.thread_level() == MPI_THREAD_MULTIPLE);

  int wr = 0, ws = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &wr);
  MPI_Comm_size(MPI_COMM_WORLD, &ws);
  dist::Communicator world;
  REQUIRE(world.rank() == wr);
  REQUIRE(world.size() == ws);
  REQUIRE(world.local_size() == ws);  // every rank of the test runs on this node
  REQUIRE(world.local_rank() == wr);
  int cmp = MPI_UNEQUAL;
  MPI_Comm_compare(world.comm(), MPI_COMM_WORLD, &cmp);
  REQUIRE(cmp == MPI_CONGRUENT);  // a private duplicate, not the application's own

  // An application's sub-communicator: two "trainers" of an ensemble (even and odd ranks).
  MPI_Comm app_sub;
  MPI_Comm_split(MPI_COMM_WORLD, wr % 2, wr, &app_sub);
  {
    dist::Communicator trainer(app_sub);
    REQUIRE(trainer.size() == (ws + 1 - wr % 2) / 2);
    REQUIRE(trainer.rank() == wr / 2);
    double v = wr;
    trainer.allreduce_sum(&v, 1, "test sum");
    double expect = 0;
    for (int r = wr % 2; r < ws; r += 2) expect += r;
    REQUIRE(v == expect);
  }
  MPI_Comm_free(&app_sub);
}

TEST_CASE("parameters and buffers are broadcast from rank 0", "[dist][model]") {
  dist::Communicator comm;
  auto m = make_mlp<double>(4, 6, 2, 10 + uint64_t(comm.rank()));
  auto ref = make_mlp<double>(4, 6, 2, 10);
  dist::broadcast_model(comm, *m);
  auto a = m->parameters(), b = ref->parameters();
  for (size_t k = 0; k < a.size(); ++k) REQUIRE(a[k]->value.to_vector<double>() == b[k]->value.to_vector<double>());
}

namespace {
std::vector<double> values_of(const Tensor& t) { return t.to(DType::f64).contiguous().to_vector<double>(); }
}  // namespace

TEST_CASE("broadcast_tensors copies the root's values into mixed tensors, packed and alone", "[dist][model]") {
  dist::Communicator comm;
  const int me = comm.rank();
  const int root = comm.size() - 1;  // not rank 0: the root is honoured
  struct Case {
    std::string what;
    Tensor t;
    int salt;
  };
  std::vector<Case> cases;
  // Small tensors of several dtypes and layouts, travelling in packs (under 256 KiB each):
  cases.push_back({"f64[5]", rank_tensor(me, {5}, DType::f64, 1), 1});
  cases.push_back({"f32 channels-last", rank_tensor(me, {2, 3, 4, 5}, DType::f32, 2).to_memory_format(MemoryFormat::channels_last), 2});
  cases.push_back({"empty", Tensor::zeros({0, 3}), 0});
  cases.push_back({"bf16[33] (odd bytes: later offsets not multiples of 8)", rank_tensor(me, {33}, DType::bf16, 3), 3});
  cases.push_back({"i64[7]", rank_tensor(me, {7}, DType::i64, 4), 4});
  // 18 tensors of 240,000 bytes: more than one 4 MiB pack holds, so two packs follow each other.
  for (int k = 0; k < 18; ++k) cases.push_back({str("f32[60000] #", k), rank_tensor(me, {60000}, DType::f32, 10 + k), 10 + k});
  // Alone: exactly 256 KiB, and a channels-last tensor of 320 KiB.
  cases.push_back({"f32[65536] (256 KiB)", rank_tensor(me, {65536}, DType::f32, 5), 5});
  cases.push_back({"f32 channels-last, 320 KiB", rank_tensor(me, {2, 8, 64, 80}, DType::f32, 6).to_memory_format(MemoryFormat::channels_last), 6});
  // Views at an offset into larger tensors, one small (packed), one large (alone): only the
  // view's rows may change.
  Tensor small_base = rank_tensor(me, {6, 1000}, DType::f32, 7);
  Tensor big_base = rank_tensor(me, {4, 100000}, DType::f32, 8);
  cases.push_back({"view of rows 1-2 of f32[6,1000]", small_base.slice(1, 3), -1});
  cases.push_back({"view of rows 1-2 of f32[4,100000]", big_base.slice(1, 3), -1});
  cases.push_back({"small f32 after the large ones", rank_tensor(me, {3}, DType::f32, 9), 9});

  std::vector<Tensor*> ts;
  for (auto& c : cases) ts.push_back(&c.t);
  dist::broadcast_tensors(comm, ts, root);

  for (auto& c : cases) {
    INFO(c.what);
    if (c.salt < 0) continue;  // the views, below
    Tensor expect = rank_tensor(root, c.t.shape(), DType::f64, c.salt);
    REQUIRE(c.t.is_channels_last() == (c.what.find("channels-last") != std::string::npos && c.t.dim() == 4));
    REQUIRE(values_of(c.t) == expect.to_vector<double>());
  }
  auto check_base = [&](const Tensor& base, int64_t cols, int salt) {
    std::vector<double> got = values_of(base), mine = rank_values(me, base.numel(), salt),
                        roots = rank_values(root, base.numel(), salt);
    for (int64_t i = 0; i < base.numel(); ++i) {
      const int64_t row = i / cols;
      const double want = (row == 1 || row == 2) ? roots[size_t(i)] : mine[size_t(i)];
      if (got[size_t(i)] != want) FAIL("element " << i << " (row " << row << ") is " << got[size_t(i)] << ", expected " << want);
    }
  };
  check_base(small_base, 1000, 7);
  check_base(big_base, 100000, 8);
}

TEST_CASE("a model that differs on one rank is rejected on every rank, naming the parameter", "[dist][model]") {
  dist::Communicator comm;
  const int last = comm.size() - 1;
  {
    // The last rank was configured with a wider hidden layer: fc1/weight differs first.
    auto m = make_mlp<double>(4, comm.rank() == last ? 9 : 6, 2, 1);
    try {
      dist::broadcast_model(comm, *m);
      FAIL("no error for a mismatched model");
    } catch (const DistError& e) {
      std::string msg = e.what();
      INFO(msg);
      REQUIRE(msg.find("entry #0") != std::string::npos);
      REQUIRE(msg.find("'fc1/weight' f64[6,4]") != std::string::npos);
      REQUIRE(msg.find("'fc1/weight' f64[9,4]") != std::string::npos);
      REQUIRE(msg.find(str("rank ", last)) != std::string::npos);
    }
  }
  {
    // Same shapes, one more parameter on the last rank.
    std::vector<dist::TensorSignature> s = {{"a", {2}, DType::f32}, {"b", {3}, DType::f32}};
    if (comm.rank() == last) s.push_back({"c", {1}, DType::f32});
    REQUIRE_THROWS_WITH(dist::check_same_signatures(comm, s),
                        Catch::Contains("entry #2") && Catch::Contains("nothing (only 2 entries)") &&
                            Catch::Contains("'c' f32[1]"));
    // A dtype difference alone is caught.
    std::vector<dist::TensorSignature> t = {{"a", {2}, comm.rank() == last ? DType::f64 : DType::f32}};
    REQUIRE_THROWS_WITH(dist::check_same_signatures(comm, t), Catch::Contains("'a' f64[2]"));
  }
  // And the communicator still works afterwards: nothing was left half-done.
  comm.barrier();
  auto ok = make_mlp<double>(4, 6, 2, 1);
  REQUIRE_NOTHROW(dist::check_same_model(comm, *ok));
}

TEST_CASE("metrics are reduced as sums and counts, exact for uneven shards", "[dist][metrics]") {
  dist::Communicator comm;
  // Rank r holds r+1 samples with losses 10r+1, 10r+2, ...: the global mean is the mean of
  // all samples, not the mean of per-rank means.
  dist::MetricReducer m;
  double all_sum = 0, all_count = 0;
  for (int r = 0; r < comm.size(); ++r)
    for (int i = 0; i <= r; ++i) {
      double loss = 10.0 * r + i + 1;
      if (r == comm.rank()) m.add("loss", loss, 1);
      all_sum += loss;
      all_count += 1;
    }
  m.add("accuracy", comm.rank() == 0 ? 3 : 0, 4);
  auto means = m.reduce_means(comm);
  REQUIRE(means.at("loss") == Approx(all_sum / all_count).epsilon(1e-15));
  REQUIRE(means.at("accuracy") == Approx(3.0 / (4.0 * comm.size())));
  auto totals = m.reduce_totals(comm);
  REQUIRE(totals.at("loss").count == all_count);

  dist::MetricReducer odd;
  odd.add(comm.rank() == 0 ? "loss" : "los", 1, 1);
  REQUIRE_THROWS_AS(odd.reduce_means(comm), DistError);
}

TEST_CASE("BatchNorm statistics reducers sum over the communicator or groups of k ranks", "[dist][syncbn]") {
  dist::Communicator comm;
  const int r = comm.rank(), n = comm.size();
  auto whole = dist::make_stats_reducer(comm);
  std::vector<double> v = {double(r), 1.0, double(r * r)};
  whole(v.data(), v.size());
  double s = 0, s2 = 0;
  for (int q = 0; q < n; ++q) {
    s += q;
    s2 += q * q;
  }
  REQUIRE(v == std::vector<double>{s, double(n), s2});

  auto pairs = dist::make_stats_reducer(comm, 2);
  std::vector<double> w = {double(r), 1.0};
  pairs(w.data(), w.size());
  int g0 = (r / 2) * 2;
  double gs = 0, gn = 0;
  for (int q = g0; q < std::min(n, g0 + 2); ++q) {
    gs += q;
    gn += 1;
  }
  REQUIRE(w == std::vector<double>{gs, gn});

  auto singles = dist::make_stats_reducer(comm, 1);  // groups of one: a no-op sum
  std::vector<double> u = {double(r)};
  singles(u.data(), 1);
  REQUIRE(u[0] == r);
}

TEST_CASE("the watchdog counts collectives and names missing ranks in its report", "[dist][watchdog]") {
  dist::Communicator comm;
  int64_t before = comm.watchdog().entered();
  comm.barrier("test barrier");
  REQUIRE(comm.watchdog().entered() == before + 1);
  auto st = comm.watchdog().status();
  REQUIRE(st.oldest_seq == 0);  // nothing in flight
  REQUIRE(std::string(st.last_name) == "test barrier");

  // The report rank 0 prints, from statuses as the watchdog threads would send them.
  dist::StallInfo stall;
  stall.rank = 0;
  stall.seq = 12;
  stall.waited_s = 2.5;
  std::strcpy(stall.name, "gradient allreduce bucket 0");
  std::vector<dist::RankStatus> ranks(6);
  for (int q = 0; q < 6; ++q) {
    ranks[size_t(q)].rank = q;
    ranks[size_t(q)].responded = 1;
    ranks[size_t(q)].entered = 12;
  }
  ranks[3].entered = 11;
  std::strcpy(ranks[3].last_name, "metric reduction");
  ranks[4].entered = 11;
  ranks[5].responded = 0;
  std::string rep = dist::format_stall_report(stall, ranks, 2.0);
  INFO(rep);
  REQUIRE(rep.find("collective #12 'gradient allreduce bucket 0'") != std::string::npos);
  REQUIRE(rep.find("ranks that entered it: 0-2") != std::string::npos);
  // A rank that does not answer (stopped, dead) is one that has not joined.
  REQUIRE(rep.find("ranks that have not joined: 3-5 (5 did not answer the watchdog)") != std::string::npos);
  REQUIRE(rep.find("rank 5: did not answer") != std::string::npos);
  REQUIRE(rep.find("communicator of 6 ranks") != std::string::npos);
  REQUIRE(rep.find("rank 3: last entered #11 'metric reduction'") != std::string::npos);
  REQUIRE(rep.find("did not answer the watchdog (dead or MPI blocked): 5") != std::string::npos);
  // Rank 0 stalled: the report comes from another rank, naming rank 0.
  stall.rank = 1;
  for (auto& r : ranks) r.responded = 1, r.entered = 12;
  ranks[0].responded = 0;
  rep = dist::format_stall_report(stall, ranks, 2.0, 6);
  INFO(rep);
  REQUIRE(rep.find("ranks that have not joined: 0 (0 did not answer the watchdog)") != std::string::npos);
  REQUIRE(rep.find("ranks that entered it: 1-5") != std::string::npos);
  // A rank that could not ask the others says so, with the communicator's real size.
  rep = dist::format_stall_report(stall, {ranks[1]}, 2.0, 6);
  INFO(rep);
  REQUIRE(rep.find("communicator of 6 ranks") != std::string::npos);
  REQUIRE(rep.find("not joined: none") == std::string::npos);
  REQUIRE(rep.find("which ranks have not joined is unknown") != std::string::npos);
  REQUIRE(dist::format_rank_list({7, 1, 2, 3, 9, 10}) == "1-3,7,9-10");
}
