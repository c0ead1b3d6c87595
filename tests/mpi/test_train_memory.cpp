// Training from arrays in memory through the Dataset interface, on every rank count, checked
// against one process that sees the same global batches:
//  - ArrayDataset -> DataLoader -> Trainer::fit();
//  - Trainer::step() alone, each rank handing in its slice of a global batch, as a
//    simulation's time loop would (no loader, no files).
#include <catch2/catch.hpp>
#include <mpi.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

#include "halo/data/loader.hpp"
#include "halo/data/memory.hpp"
#include "halo/nn/activation.hpp"
#include "halo/nn/conv.hpp"
#include "halo/nn/linear.hpp"
#include "halo/nn/losses.hpp"
#include "halo/nn/model.hpp"
#include "halo/nn/structure.hpp"
#include "halo/optim/sgd.hpp"
#include "halo/train/trainer.hpp"
#include "mpi_world.hpp"
#include "quiet_trainer.hpp"
#include "train/checkpoint_stats.hpp"

using namespace halo;

using halo::test::world_rank;
using halo::test::quiet;
using halo::test::world_size;

namespace {


// A small 3D CNN without BatchNorm (whose local statistics would differ from one process's).
nn::Model small_cnn() {
  nn::Model m;
  m.input({2, 4, 4, 4});
  nn::ConvOptions c;
  c.padding = 1;
  m.append(std::make_shared<nn::Conv3d>(2, 3, 3, c), "conv");
  m.append(std::make_shared<nn::ReLU>(), "relu");
  m.append(std::make_shared<nn::Flatten>(), "flatten");
  m.append(std::make_shared<nn::Linear>(3 * 64, 2), "fc");
  m.compile();
  m.init(11);
  return m;
}

// n samples (2, 4, 4, 4) and targets (2,) that depend on them, identical on every rank.
std::pair<Tensor, Tensor> arrays(int64_t n) {
  Tensor x = Tensor::empty({n, 2, 4, 4, 4});
  Tensor y = Tensor::empty({n, 2});
  float* xp = x.data<float>();
  float* yp = y.data<float>();
  for (int64_t i = 0; i < n; ++i) {
    double s0 = 0, s1 = 0;
    for (int64_t k = 0; k < 128; ++k) {
      const float v = float(std::sin(0.37 * double(i * 128 + k)) * 0.5);
      xp[i * 128 + k] = v;
      (k < 64 ? s0 : s1) += v;
    }
    yp[i * 2] = float(s0 / 64.0);
    yp[i * 2 + 1] = float(s1 / 64.0 - s0 / 128.0);
  }
  return {x, y};
}

double max_param_diff(nn::Model& a, nn::Model& b) {
  double worst = 0;
  auto pa = a.parameters(), pb = b.parameters();
  REQUIRE(pa.size() == pb.size());
  for (size_t i = 0; i < pa.size(); ++i) {
    auto va = pa[i]->value.to_vector<float>(), vb = pb[i]->value.to_vector<float>();
    for (size_t k = 0; k < va.size(); ++k) worst = std::max(worst, double(std::fabs(va[k] - vb[k])));
  }
  return worst;
}

// Counts the hooks fit() calls, with the step phases a timeline would draw.
struct Counting : train::Callback {
  int fit_start = 0, epoch_start = 0, steps = 0, epoch_end = 0, fit_end = 0;
  double phases = 0;
  void on_fit_start(const train::FitState&) override { ++fit_start; }
  void on_epoch_start(const train::FitState&) override { ++epoch_start; }
  void on_step_end(const train::FitState&, const train::StepResult& r) override {
    ++steps;
    phases += r.timings.forward_s + r.timings.backward_s + r.timings.comm_s + r.timings.optimizer_s;
  }
  void on_epoch_end(const train::FitState&, const train::EpochRecord&) override { ++epoch_end; }
  void on_fit_end(const train::FitState&, const train::FitResult&) override { ++fit_end; }
};

}  // namespace

TEST_CASE("fit() on an ArrayDataset over the ranks equals one process with the global batch", "[trainer][memory]") {
  const int P = world_size();
  const int64_t n = 24, b = 2;  // 24 divides by b * P for P = 1, 2, 3, 4: no padding
  auto [x, y] = arrays(n);
  auto ds = std::make_shared<data::ArrayDataset>(x, y, "fields");

  nn::Model m = small_cnn();
  optim::SGD sgd(m.parameters(), {.lr = 0.05, .momentum = 0.9});
  nn::MSELoss loss;
  data::LoaderOptions lo;
  lo.batch_size = b;
  lo.shard.shuffle = false;  // rank r takes samples r, r + P, ...: step k holds [k b P, (k + 1) b P)
  lo.comm = dist::Communicator(MPI_COMM_WORLD);
  data::DataLoader loader(ds, lo);
  const std::string trace = halo::test::shared_temp_path("halo-trace") + ".json";
  train::TrainerOptions to = quiet(3);
  to.trace_file = trace;
  train::Trainer t(dist::Communicator(MPI_COMM_WORLD), m, sgd, loss, loader, nullptr, nullptr, to);
  auto counting = std::make_shared<Counting>();
  t.add_callback(counting);
  train::FitResult r = t.fit();

  nn::Model m1 = small_cnn();
  optim::SGD sgd1(m1.parameters(), {.lr = 0.05, .momentum = 0.9});
  nn::MSELoss loss1;
  data::LoaderOptions lo1 = lo;
  lo1.batch_size = b * P;
  lo1.comm = dist::Communicator(MPI_COMM_SELF);
  data::DataLoader loader1(ds, lo1);
  train::Trainer t1(dist::Communicator(MPI_COMM_SELF), m1, sgd1, loss1, loader1, nullptr, nullptr, quiet(3));
  train::FitResult r1 = t1.fit();

  REQUIRE(r.epochs.size() == 3);
  CHECK(r.global_step == 3 * n / (b * P));
  CHECK(r.global_step == r1.global_step);
  for (size_t e = 0; e < 3; ++e) {
    CHECK(r.epochs[e].train_samples == n);
    CHECK(r.epochs[e].train_loss == Approx(r1.epochs[e].train_loss).epsilon(1e-4));
  }
  CHECK(r.epochs[2].train_loss < r.epochs[0].train_loss);
  CHECK(max_param_diff(m, m1) < 1e-5);
  CHECK(counting->fit_start == 1);
  CHECK(counting->epoch_start == 3);
  CHECK(counting->steps == r.global_step);
  CHECK(counting->epoch_end == 3);
  CHECK(counting->fit_end == 1);
  CHECK(counting->phases > 0);

  // Rank 0 wrote one trace with every rank's row: per rank and step the six phases
  // (data wait and step guard may be too short to show, so forward and gradient wait are
  // counted), every layer's forward and backward, and the gradient buckets.
  MPI_Barrier(MPI_COMM_WORLD);
  if (world_rank() == 0) {
    std::ifstream in(trace);
    REQUIRE(in.good());
    std::stringstream text;
    text << in.rdbuf();
    const std::string json = text.str();
    auto count = [&](const std::string& what) {
      size_t n = 0;
      for (size_t at = json.find(what); at != std::string::npos; at = json.find(what, at + 1)) ++n;
      return n;
    };
    const size_t steps = size_t(r.global_step) * size_t(P);
    CHECK(count("\"name\":\"forward\"") == steps);
    CHECK(count("\"name\":\"gradient wait\"") == steps);
    CHECK(count("\"cat\":\"backward\"") == steps * (m.nodes().size() - 1));  // every layer, the input excepted
    CHECK(count("\"cat\":\"allreduce\"") >= steps);
    for (int rank = 0; rank < P; ++rank) CHECK(count("\"name\":\"rank " + std::to_string(rank) + "\"") == 1);
    in.close();
    std::filesystem::remove(trace);
  }
}

TEST_CASE("Trainer::step alone over the ranks equals one process stepping on the whole batch", "[trainer][memory]") {
  const int P = world_size(), rank = world_rank();
  const int64_t global = 24;  // every rank count the suite runs (1 to 4) divides it
  REQUIRE(global % P == 0);
  const int64_t per_rank = global / P;
  auto [x, y] = arrays(global * 6);

  nn::Model m = small_cnn();
  optim::SGD sgd(m.parameters(), {.lr = 0.05});
  nn::MSELoss loss;
  train::Trainer t(dist::Communicator(MPI_COMM_WORLD), m, sgd, loss, quiet(1));

  nn::Model m1 = small_cnn();
  optim::SGD sgd1(m1.parameters(), {.lr = 0.05});
  nn::MSELoss loss1;
  train::Trainer t1(dist::Communicator(MPI_COMM_SELF), m1, sgd1, loss1, quiet(1));

  std::vector<double> losses, losses1;
  for (int64_t s = 0; s < 6; ++s) {
    const int64_t first = s * global + rank * per_rank;
    train::StepResult r = t.step(x.slice(first, first + per_rank), y.slice(first, first + per_rank));
    CHECK(r.updated);
    CHECK_FALSE(r.skipped);
    CHECK(r.global_step == s + 1);
    CHECK(r.batch_size == per_rank);
    double mean = r.loss;
    MPI_Allreduce(MPI_IN_PLACE, &mean, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    losses.push_back(mean / P);  // equal slices: the mean of the ranks' means is the batch's
    losses1.push_back(t1.step(x.slice(s * global, (s + 1) * global), y.slice(s * global, (s + 1) * global)).loss);
  }
  for (size_t s = 0; s < losses.size(); ++s) CHECK(losses[s] == Approx(losses1[s]).epsilon(1e-4));
  CHECK(losses.back() < losses.front());
  CHECK(max_param_diff(m, m1) < 1e-5);
  CHECK(t.global_step() == 6);
}

TEST_CASE("fit() over an ArrayDataset replaces a NaN sample on its rank and counts it once", "[trainer][memory]") {
  const int64_t n = 24;
  auto [x, y] = arrays(n);
  x.data<float>()[5 * 128 + 17] = std::nanf("");
  auto ds = std::make_shared<data::ArrayDataset>(x, y, "fields");
  nn::Model m = small_cnn();
  optim::SGD sgd(m.parameters(), {.lr = 0.05});
  nn::MSELoss loss;
  data::LoaderOptions lo;
  lo.batch_size = 2;
  lo.on_bad_sample = data::BadSamplePolicy::skip;
  lo.comm = dist::Communicator(MPI_COMM_WORLD);
  data::DataLoader loader(ds, lo);
  train::Trainer t(dist::Communicator(MPI_COMM_WORLD), m, sgd, loss, loader, nullptr, nullptr, quiet(2));
  train::FitResult r = t.fit();
  REQUIRE(r.epochs.size() == 2);
  for (const auto& e : r.epochs) {
    CHECK(e.skipped_samples == 1);
    CHECK(e.skipped_steps == 0);
    CHECK(std::isfinite(e.train_loss));
  }
}

TEST_CASE("resume: rank 0 alone reads the checkpoint, and every rank resumes the same state", "[trainer][resume]") {
  auto [x, y] = arrays(24);
  auto ds = std::make_shared<data::ArrayDataset>(x, y, "fields");
  const std::string path = halo::test::shared_temp_path("halo-resume") + ".h5";
  data::LoaderOptions lo;
  lo.batch_size = 2;
  lo.comm = dist::Communicator(MPI_COMM_WORLD);

  nn::Model m = small_cnn();
  optim::SGD sgd(m.parameters(), {.lr = 0.05, .momentum = 0.9});
  nn::MSELoss loss;
  data::DataLoader loader(ds, lo);
  train::TrainerOptions to = quiet(2);
  to.checkpoint_path = path;
  train::Trainer t(dist::Communicator(MPI_COMM_WORLD), m, sgd, loss, loader, nullptr, nullptr, to);
  t.fit();
  t.save_checkpoint();  // the state after the last epoch, whatever fit() wrote before it

  // A second model whose parameters differ on every rank until the resume overwrites them.
  nn::Model m2 = small_cnn();
  for (auto* p : m2.parameters()) p->value.fill_(0.01 * (world_rank() + 1));
  optim::SGD sgd2(m2.parameters(), {.lr = 0.05, .momentum = 0.9});
  data::DataLoader loader2(ds, lo);
  train::TrainerOptions to2 = quiet(3);
  to2.checkpoint_path = path;
  to2.resume_from = path;
  const int64_t before = train::checkpoint_files_loaded();
  train::Trainer t2(dist::Communicator(MPI_COMM_WORLD), m2, sgd2, loss, loader2, nullptr, nullptr, to2);
  const int64_t opened = train::checkpoint_files_loaded() - before;
  CHECK(opened == (world_rank() == 0 ? 1 : 0));
  CHECK(t2.epochs_done() == 2);
  CHECK(max_param_diff(m, m2) == 0.0);
  MPI_Barrier(MPI_COMM_WORLD);
  if (world_rank() == 0) std::filesystem::remove(path);
}
