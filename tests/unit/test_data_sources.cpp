// Data sources other than HDF5 files (ArrayDataset, CallbackDataset, a user's own Dataset)
// through the DataLoader: every sample once per epoch in either memory format, staging into
// memory and into a directory, bad samples skipped; and the checkpoint free functions.
#include <catch2/catch.hpp>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <limits>
#include <set>
#include <unistd.h>

#include "halo/data/loader.hpp"
#include "halo/data/memory.hpp"
#include "halo/nn/activation.hpp"
#include "halo/nn/dropout.hpp"
#include "halo/nn/linear.hpp"
#include "halo/nn/losses.hpp"
#include "halo/nn/model.hpp"
#include "halo/optim/adam.hpp"
#include "halo/optim/sgd.hpp"
#include "halo/train/checkpoint.hpp"
#include "halo/train/trainer.hpp"

using namespace halo;
using namespace halo::data;
namespace fs = std::filesystem;

namespace {

// Sample i holds value 1000 i + (c * S + s) at channel c, spatial position s; label i, -i.
std::pair<Tensor, Tensor> numbered(int64_t n, int64_t c, int64_t s) {
  Tensor x = Tensor::empty({n, c, s, 1, 1});
  Tensor y = Tensor::empty({n, 2});
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < c * s; ++k) x.data<float>()[i * c * s + k] = float(1000 * i + k);
    y.data<float>()[2 * i] = float(i);
    y.data<float>()[2 * i + 1] = float(-i);
  }
  return {x, y};
}

// Reads every batch of one epoch: sample index -> (the delivered x in logical order, label 0).
std::map<int64_t, std::vector<float>> epoch_samples(DataLoader& l, int64_t epoch) {
  std::map<int64_t, std::vector<float>> out;
  l.start_epoch(epoch);
  while (const Batch* b = l.next()) {
    Tensor x = b->x.contiguous();
    const int64_t per = x.numel() / b->size;
    for (int64_t k = 0; k < b->real; ++k) {
      const int64_t i = int64_t(b->y.data<float>()[2 * k]);
      out[i] = std::vector<float>(x.data<float>() + k * per, x.data<float>() + (k + 1) * per);
      CHECK(b->samples[size_t(k)] == i);
    }
  }
  return out;
}

void check_numbered(const std::map<int64_t, std::vector<float>>& got, int64_t n) {
  REQUIRE(int64_t(got.size()) == n);
  for (const auto& [i, v] : got)
    for (size_t k = 0; k < v.size(); ++k) REQUIRE(v[k] == float(1000 * i + int64_t(k)));
}

// These tests train on one process: MPI is initialised once, for the Trainer's communicator.
dist::Communicator self() {
  static dist::MpiSession mpi;
  return dist::Communicator(MPI_COMM_SELF);
}

std::string tmpdir(const std::string& name) {
  auto p = fs::temp_directory_path() / ("halo-test-sources-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

}  // namespace

TEST_CASE("ArrayDataset: every sample once, in either memory format, staged or not") {
  auto [x, y] = numbered(7, 3, 4);
  auto ds = std::make_shared<ArrayDataset>(x, y, "numbered");
  CHECK(ds->size() == 7);
  CHECK(ds->sample_shape() == Shape{3, 4, 1, 1});
  CHECK(ds->label_shape() == Shape{2});
  CHECK_FALSE(ds->channels_stored_last());
  const std::string dir = tmpdir("array");
  for (auto fmt : {MemoryFormat::contiguous, MemoryFormat::channels_last})
    for (auto staging : {Staging::none, Staging::memory, Staging::directory}) {
      INFO("format " << int(fmt) << " staging " << int(staging));
      LoaderOptions o;
      o.batch_size = 3;
      o.memory_format = fmt;
      o.staging = staging;
      o.stage_dir = dir + "/" + std::to_string(int(fmt));
      DataLoader l(ds, o);
      check_numbered(epoch_samples(l, 0), 7);
      check_numbered(epoch_samples(l, 1), 7);
    }
  fs::remove_all(dir);

  // A channels-last tensor is shared as it is and delivered channels-last without a transpose.
  auto cl = std::make_shared<ArrayDataset>(x.to_memory_format(MemoryFormat::channels_last), y);
  CHECK(cl->channels_stored_last());
  LoaderOptions two;
  two.batch_size = 2;
  DataLoader l(cl, two);
  l.start_epoch(0);
  CHECK(l.next()->x.is_channels_last());
  check_numbered(epoch_samples(l, 0), 7);
}

TEST_CASE("ArrayDataset: later writes to the arrays are seen (an in-situ code refills them)") {
  auto [x, y] = numbered(2, 1, 2);
  ArrayDataset ds(x, y);
  ReadScratch scratch;
  float v[2], t[2];
  x.data<float>()[2] = 42.f;
  ds.read(1, v, t, scratch);
  CHECK(v[0] == 42.f);
  CHECK_THROWS_AS(ds.read(2, v, t, scratch), IOError);
  CHECK_THROWS_AS(ArrayDataset(x, Tensor::zeros({3, 2})), ConfigError);
  CHECK_THROWS_AS(ArrayDataset(x, Tensor::zeros({2, 2}, DType::f64)), ConfigError);
}

TEST_CASE("CallbackDataset: a thread-safe function feeds the loader; bad samples are skipped or named") {
  std::atomic<int64_t> calls{0};
  CallbackDataset::Spec spec;
  spec.size = 9;
  spec.sample_shape = {2, 3};
  spec.label_shape = {2};
  spec.channels_last = true;  // the function writes (3, 2)
  spec.name = "generator";
  auto ds = std::make_shared<CallbackDataset>(spec, [&](int64_t i, float* x, void* y) {
    ++calls;
    for (int64_t s = 0; s < 3; ++s)
      for (int64_t c = 0; c < 2; ++c) x[s * 2 + c] = float(1000 * i + c * 3 + s);
    auto* t = static_cast<float*>(y);
    t[0] = float(i);
    t[1] = i == 4 ? std::numeric_limits<float>::quiet_NaN() : 0.f;
  });
  LoaderOptions o;
  o.batch_size = 4;
  o.io_threads = 3;
  o.memory_format = MemoryFormat::contiguous;  // the loader asks for (C, spatial): transposed here
  o.on_bad_sample = BadSamplePolicy::skip;
  DataLoader l(ds, o);
  auto got = epoch_samples(l, 0);
  CHECK(got.count(4) == 0);  // replaced by another sample, which then comes twice
  CHECK(got.size() == 8);    // every other sample, each exact
  for (const auto& [i, v] : got)
    for (size_t k = 0; k < v.size(); ++k) CHECK(v[k] == float(1000 * i + int64_t(k)));
  CHECK(l.epoch_stats().skipped_samples == 1);
  CHECK(calls >= 9);  // every sample read (the bad one, then its replacement)

  o.on_bad_sample = BadSamplePolicy::error;
  DataLoader strict(ds, o);
  strict.start_epoch(0);
  try {
    while (strict.next()) {
    }
    FAIL("a NaN label must stop the epoch");
  } catch (const IOError& e) {
    CHECK_THAT(e.what(), Catch::Contains("generator, sample 4"));
    CHECK_THAT(e.what(), Catch::Contains("label value"));
  }
}

TEST_CASE("Dataset: a program's own source works with the loader") {
  // Sample i is i everywhere; no value checks, no describe(): the defaults serve.
  struct Constant : Dataset {
    Shape xs{1, 2, 2}, ys{1};
    int64_t size() const override { return 5; }
    const Shape& sample_shape() const override { return xs; }
    const Shape& label_shape() const override { return ys; }
    DType label_dtype() const override { return DType::i32; }
    void read(int64_t i, float* x, void* y, ReadScratch&, bool) const override {
      for (int k = 0; k < 4; ++k) x[k] = float(i);
      *static_cast<int32_t*>(y) = int32_t(i);
    }
  };
  LoaderOptions o;
  o.batch_size = 2;
  o.shard.shuffle = false;
  DataLoader l(std::make_shared<Constant>(), o);
  CHECK(l.batches_per_epoch() == 3);
  l.start_epoch(0);
  std::set<int32_t> seen;
  while (const Batch* b = l.next())
    for (int64_t k = 0; k < b->real; ++k) {
      seen.insert(b->y.data<int32_t>()[k]);
      CHECK(b->x.data<float>()[k * 4] == float(b->y.data<int32_t>()[k]));
    }
  CHECK(seen.size() == 5);
  CHECK(l.dataset().describe(3) == "sample 3");
}

TEST_CASE("checkpoint free functions: a step loop saved and restored continues exactly") {
  auto make = [] {
    nn::Model m;
    m.input({4});
    m.append(std::make_shared<nn::Linear>(4, 8), "fc1");
    m.append(std::make_shared<nn::Tanh>(), "tanh");
    m.append(std::make_shared<nn::Dropout>(0.25, 5), "drop");
    m.append(std::make_shared<nn::Linear>(8, 1), "fc2");
    m.compile();
    m.init(3);
    return m;
  };
  Tensor x = Tensor::empty({16, 4}), y = Tensor::empty({16, 1});
  for (int64_t i = 0; i < 64; ++i) x.data<float>()[i] = float(std::cos(0.3 * double(i)));
  for (int64_t i = 0; i < 16; ++i) y.data<float>()[i] = x.data<float>()[4 * i] - 0.5f * x.data<float>()[4 * i + 3];
  train::TrainerOptions o;
  o.progress = false;
  const std::string dir = tmpdir("state");
  const std::string path = dir + "/state.h5";

  // Straight through: 6 steps. Interrupted: 3 steps, save, a fresh model and optimizer
  // loaded from the file, 3 more steps.
  nn::Model a = make();
  optim::Adam adam_a(a.parameters(), {});
  nn::MSELoss la;
  train::Trainer ta(self(), a, adam_a, la, o);
  for (int s = 0; s < 6; ++s) ta.step(x, y);

  nn::Model b = make();
  optim::Adam adam_b(b.parameters(), {});
  nn::MSELoss lb;
  {
    train::TrainerOptions with_path = o;
    with_path.checkpoint_path = dir + "/trainer.h5";
    train::Trainer tb(self(), b, adam_b, lb, with_path);
    for (int s = 0; s < 3; ++s) tb.step(x, y);
    train::save_training_checkpoint(path, b, adam_b, nullptr, {0, 3, 3, 1});
    tb.save_checkpoint();  // the Trainer's own writes the same state, and its position
  }
  {
    nn::Model e = make();
    optim::Adam adam_e(e.parameters(), {});
    CHECK(train::load_training_checkpoint(dir + "/trainer.h5", e, adam_e).global_step == 3);
    auto pb = b.parameters(), pe = e.parameters();
    for (size_t i = 0; i < pb.size(); ++i) CHECK(pb[i]->value.to_vector<float>() == pe[i]->value.to_vector<float>());
  }
  nn::Model c = make();
  optim::Adam adam_c(c.parameters(), {});
  nn::MSELoss lc;
  const train::TrainingPosition pos = train::load_training_checkpoint(path, c, adam_c);
  CHECK(pos.global_step == 3);
  CHECK(pos.step_in_epoch == 3);
  train::Trainer tc(self(), c, adam_c, lc, o);
  for (int s = 0; s < 3; ++s) tc.step(x, y);
  auto pa = a.parameters(), pc = c.parameters();
  for (size_t i = 0; i < pa.size(); ++i) CHECK(pa[i]->value.to_vector<float>() == pc[i]->value.to_vector<float>());

  // Another optimizer type is refused, naming the file.
  nn::Model d = make();
  optim::SGD sgd(d.parameters(), {});
  CHECK_THROWS_WITH(train::load_training_checkpoint(path, d, sgd), Catch::Contains(path));
  fs::remove_all(dir);
}
