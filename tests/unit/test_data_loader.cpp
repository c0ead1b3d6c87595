// Sampler, loader, staging, packing and generator tests on files Halo writes itself
// (the files h5py writes are tested in tests/data).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>
#include <unistd.h>

#include "halo/data/loader.hpp"
#include "halo/data/packed.hpp"
#include "halo/data/synthetic.hpp"

using namespace halo;
using namespace halo::data;
namespace fs = std::filesystem;

namespace {
std::string tmpdir(const std::string& name) {
  auto p = fs::temp_directory_path() / ("halo-test-data-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

/// Five generated 12x16 DeepCAM fields in DIR/in, opened as a dataset.
std::shared_ptr<H5Dataset> small_deepcam(const std::string& dir) {
  GenerateOptions g;
  g.format = "deepcam";
  g.out_dir = dir + "/in";
  g.samples = 5;
  g.height = 12;
  g.width = 16;
  generate(g);
  return std::make_shared<H5Dataset>(list_files(g.out_dir), deepcam());
}

std::vector<int64_t> epoch_samples(DataLoader& dl, int64_t epoch) {
  dl.start_epoch(epoch);
  std::vector<int64_t> out;
  while (const Batch* b = dl.next()) out.insert(out.end(), b->samples.begin(), b->samples.end());
  return out;
}
}  // namespace

TEST_CASE("sampler: permutation is a pure function of (seed, epoch)") {
  auto a = permutation(1000, 7, 3), b = permutation(1000, 7, 3), c = permutation(1000, 7, 4);
  CHECK(a == b);
  CHECK(a != c);
  auto s = a;
  std::sort(s.begin(), s.end());
  for (int64_t i = 0; i < 1000; ++i) REQUIRE(s[size_t(i)] == i);
  ShardedSampler p(50, 0, 1, {});
  CHECK(p.global_order(2) == ShardedSampler(50, 0, 1, {}).global_order(2));
  CHECK(p.global_order(2) != p.global_order(3));
}

// Exhaustive over sample counts that divide neither by the ranks nor by the batch (the
// reported crash: 33 samples on 2 ranks), ranks 1..5, batch sizes 1..8, both policies,
// global and local (staging) shuffles.
TEST_CASE("sampler: every rank gets the same batches; pad repeats only the padding, drop_last repeats nothing") {
  for (int64_t n : {0, 1, 2, 5, 7, 10, 13, 33, 50}) {
    for (int P = 1; P <= 5; ++P) {
      for (int64_t b = 1; b <= 8; ++b) {
        for (bool drop : {false, true}) {
          for (bool local : {false, true}) {
            for (int64_t epoch : {0, 5}) {
              INFO("n=" << n << " P=" << P << " b=" << b << " drop=" << drop << " local=" << local
                        << " epoch=" << epoch);
              std::vector<int> real_seen(size_t(n), 0), seen(size_t(n), 0);
              std::vector<int64_t> padding;
              int64_t batches0 = -1, size0 = -1, real_total = 0;
              for (int r = 0; r < P; ++r) {
                ShardOptions o;
                o.seed = 11;
                o.drop_last = drop;
                o.local_shuffle = local;
                o.batch_size = b;
                ShardedSampler s(n, r, P, o);
                auto sh = s.shard(epoch);
                REQUIRE(int64_t(sh.size()) == s.shard_size());
                if (r == 0) {
                  batches0 = s.batches();
                  size0 = s.shard_size();
                }
                // the step count and the batch sizes are the same on every rank
                REQUIRE(s.batches() == batches0);
                REQUIRE(s.shard_size() == size0);
                REQUIRE(s.batches() == (s.shard_size() + b - 1) / b);
                if (drop) {
                  REQUIRE(s.shard_size() % b == 0);  // full batches only
                  REQUIRE(s.shard_size() == n / (P * b) * b);
                  REQUIRE(s.real_size() == s.shard_size());
                } else {
                  REQUIRE(s.shard_size() == (n + P - 1) / P);
                  REQUIRE(s.shard_size() - s.real_size() <= 1);  // at most one repeat per rank
                }
                for (int64_t k = 0; k < int64_t(sh.size()); ++k) {
                  seen[size_t(sh[size_t(k)])]++;
                  if (k < s.real_size()) real_seen[size_t(sh[size_t(k)])]++;
                  else padding.push_back(sh[size_t(k)]);
                }
                real_total += s.real_size();
              }
              if (drop) {
                for (int v : seen) REQUIRE(v <= 1);  // nothing twice
                CHECK(real_total == n / (P * b) * P * b);
                CHECK(padding.empty());
              } else {
                // every real sample exactly once among the real rows, at least once in all
                for (int v : real_seen) REQUIRE(v == 1);
                CHECK(real_total == n);
                CHECK(int64_t(padding.size()) == size0 * P - n);
                CHECK(int64_t(padding.size()) < P);
                // the padding repeats the start of epoch 0's (local) or this epoch's order
                ShardOptions o;
                o.seed = 11;
                auto order = ShardedSampler(n, 0, P, o).global_order(local ? 0 : epoch);
                std::vector<int64_t> expect;
                for (int64_t k = n; k < size0 * P; ++k) expect.push_back(order[size_t(k % n)]);
                std::sort(expect.begin(), expect.end());
                std::sort(padding.begin(), padding.end());
                CHECK(padding == expect);
              }
            }
          }
        }
      }
    }
  }
}

TEST_CASE("sampler: validation order is unshuffled; local shuffle keeps each rank's set") {
  ShardOptions v;
  v.shuffle = false;
  // 7 samples on 3 ranks: 3 each, rank 1's third is the padding repeat of sample 0
  ShardedSampler val(7, 1, 3, v);
  CHECK(val.shard(4) == std::vector<int64_t>{1, 4, 0});
  CHECK(val.real_size() == 2);
  CHECK(ShardedSampler(7, 0, 3, v).real_size() == 3);
  ShardOptions l;
  l.seed = 3;
  l.local_shuffle = true;
  ShardedSampler s(40, 1, 3, l);
  auto e0 = s.shard(0), e1 = s.shard(1);
  CHECK(e0 != e1);
  CHECK(std::set<int64_t>(e0.begin(), e0.end()) == std::set<int64_t>(e1.begin(), e1.end()));
  // the padding stays last when the real samples are reshuffled
  ShardedSampler s2(40, 2, 3, l);
  REQUIRE(s2.real_size() == 13);
  REQUIRE(s2.shard_size() == 14);
  CHECK(s2.shard(3).back() == s2.shard(0).back());
}

TEST_CASE("loader: prefetching threads deliver every sample once into reused buffers") {
  std::string dir = tmpdir("loader");
  GenerateOptions g;
  g.format = "cosmoflow-mlperf";
  g.out_dir = dir;
  g.samples = 11;
  g.size = 8;
  generate(g);
  auto ds = std::make_shared<H5Dataset>(list_files(dir), cosmoflow_mlperf());
  REQUIRE(ds->size() == 11);
  for (int threads : {1, 3}) {
    LoaderOptions o;
    o.batch_size = 3;
    o.prefetch = 2;
    o.io_threads = threads;
    o.shard.seed = 5;
    DataLoader dl(ds, o);
    CHECK(dl.batches_per_epoch() == 4);
    std::set<const void*> buffers;
    for (int64_t e = 0; e < 3; ++e) {
      dl.start_epoch(e);
      std::vector<int64_t> got;
      while (const Batch* b = dl.next()) {
        buffers.insert(b->x.raw_data());
        got.insert(got.end(), b->samples.begin(), b->samples.end());
        // contents match a direct read of the same sample
        std::vector<float> x(4 * 512), y(4);
        ReadScratch s;
        ds->read(b->samples.back(), x.data(), y.data(), s);
        auto bx = b->x.slice(b->size - 1, b->size).to_vector<float>();
        REQUIRE(bx == x);
      }
      CHECK(got == ShardedSampler(11, 0, 1, o.shard).shard(e));
      CHECK(dl.epoch_stats().samples == 11);
      CHECK(dl.epoch_stats().bytes > 0);
    }
    CHECK(buffers.size() <= size_t(o.prefetch + 1));
    CHECK(dl.total_stats().wait_seconds >= 0);
  }
  LoaderOptions d;
  d.batch_size = 3;
  d.drop_last_batch = true;
  DataLoader dl(ds, d);
  CHECK(epoch_samples(dl, 0).size() == 9);
  CHECK(dl.describe_epoch() == "9 samples per rank in 3 batches, 2 skipped per epoch (drop_last_batch)");
  fs::remove_all(dir);
}

TEST_CASE("loader: staging into memory or a directory serves the same samples") {
  std::string dir = tmpdir("stage");
  auto ds = small_deepcam(dir);
  LoaderOptions base;
  base.batch_size = 2;
  base.shard.seed = 9;
  base.staging = Staging::memory;
  LoaderOptions disk = base;
  disk.staging = Staging::directory;
  disk.stage_dir = dir + "/stage";
  DataLoader mem(ds, base), dsk(ds, disk);
  for (int64_t e = 0; e < 2; ++e) {
    mem.start_epoch(e);
    dsk.start_epoch(e);
    while (const Batch* a = mem.next()) {
      const Batch* b = dsk.next();
      REQUIRE(b != nullptr);
      CHECK(a->samples == b->samples);
      CHECK(a->x.to_vector<float>() == b->x.to_vector<float>());
      CHECK(a->y.to_vector<int32_t>() == b->y.to_vector<int32_t>());
      // and both equal the unstaged read
      std::vector<float> x(16 * 12 * 16);
      std::vector<int32_t> y(12 * 16);
      ReadScratch s;
      ds->read(a->samples[0], x.data(), y.data(), s);
      CHECK(a->x.slice(0, 1).to_vector<float>() == x);
    }
    CHECK(dsk.next() == nullptr);
  }
  CHECK(fs::exists(dir + "/stage/halo-stage-rank0.h5"));
  CHECK(mem.total_stats().stage_seconds > 0);
  fs::remove_all(dir);
}

TEST_CASE("loader: pinned batches (for GPUs) hold the same samples as pageable ones") {
  // With a GPU the batches live in page-locked memory; without one the option falls back to
  // ordinary memory. Either way the delivered values must not change.
  std::string dir = tmpdir("pin");
  auto ds = small_deepcam(dir);
  LoaderOptions base;
  base.batch_size = 2;
  base.shard.seed = 4;
  LoaderOptions pinned = base;
  pinned.pin_memory = true;
  DataLoader plain(ds, base), pin(ds, pinned);
  plain.start_epoch(1);
  pin.start_epoch(1);
  int batches = 0;
  while (const Batch* a = plain.next()) {
    const Batch* b = pin.next();
    REQUIRE(b != nullptr);
    CHECK(b->x.device() == Device::cpu());
    CHECK(a->samples == b->samples);
    CHECK(a->x.to_vector<float>() == b->x.to_vector<float>());
    CHECK(a->y.to_vector<int32_t>() == b->y.to_vector<int32_t>());
    ++batches;
  }
  CHECK(batches == 3);
  CHECK(pin.next() == nullptr);
  fs::remove_all(dir);
}

TEST_CASE("pack: shards hold the same samples, with their origin") {
  std::string dir = tmpdir("pack");
  GenerateOptions g;
  g.format = "cosmoflow-raw";
  g.out_dir = dir + "/raw";
  g.samples = 2;
  g.size = 16;
  generate(g);
  H5Dataset raw(list_files(g.out_dir), cosmoflow_raw(8));
  REQUIRE(raw.size() == 16);
  auto shards = pack(raw, dir + "/packed", 5);
  CHECK(shards.size() == 4);
  H5Dataset packed(shards, detect_layout(shards[0]));
  REQUIRE(packed.size() == 16);
  CHECK(packed.layout().transform == Transform::log1p);
  std::vector<float> a(4 * 512), b(4 * 512), ya(4), yb(4);
  ReadScratch s;
  for (int64_t i = 0; i < 16; ++i) {
    raw.read(i, a.data(), ya.data(), s);
    packed.read(i, b.data(), yb.data(), s);
    REQUIRE(a == b);
    REQUIRE(ya == yb);
  }
  fs::remove_all(dir);
}

TEST_CASE("generator: FFT round trip, and CosmoFlow targets visible in the fields") {
  std::vector<std::complex<double>> a(512), orig;
  for (size_t i = 0; i < a.size(); ++i) a[i] = {std::sin(double(i)), std::cos(3.0 * double(i))};
  orig = a;
  fft3d(a, 8, false);
  // the zero frequency is the sum
  std::complex<double> sum = 0;
  for (auto v : orig) sum += v;
  CHECK(std::abs(a[0] - sum) < 1e-9);
  fft3d(a, 8, true);
  for (size_t i = 0; i < a.size(); ++i) REQUIRE(std::abs(a[i] - orig[i]) < 1e-12);
  // mean count grows with the density target, spread of log counts with the amplitude target
  auto stats = [](const std::vector<int16_t>& v) {
    double m = 0, l = 0, l2 = 0;
    for (size_t i = 0; i < v.size(); i += 4) m += v[i], l += std::log1p(v[i]), l2 += std::log1p(v[i]) * std::log1p(v[i]);
    double n = double(v.size() / 4);
    return std::make_pair(m / n, std::sqrt(l2 / n - (l / n) * (l / n)));
  };
  auto lo = stats(cosmoflow_volume(16, {0, 0, 0, -1}, 1)), hi = stats(cosmoflow_volume(16, {0, 0, 0, 1}, 1));
  CHECK(hi.first > 1.8 * lo.first);
  auto narrow = stats(cosmoflow_volume(16, {-1, 0, 0, 1}, 2)), wide = stats(cosmoflow_volume(16, {1, 0, 0, 1}, 2));
  CHECK(wide.second > narrow.second * 1.2);
}

TEST_CASE("generator: DeepCAM labels mark cyclones and rivers where the fields say so") {
  std::vector<float> d;
  std::vector<int32_t> l;
  deepcam_sample(48, 72, 3, d, l);
  REQUIRE(d.size() == 48 * 72 * 16);
  double moist[3] = {0, 0, 0}, cnt[3] = {0, 0, 0};
  for (size_t i = 0; i < l.size(); ++i) {
    REQUIRE((l[i] >= 0 && l[i] <= 2));
    moist[l[i]] += d[i * 16 + 3];
    cnt[l[i]] += 1;
  }
  REQUIRE(cnt[1] > 0);
  REQUIRE(cnt[2] > 0);
  CHECK(moist[1] / cnt[1] > moist[0] / cnt[0] + 0.3);
  CHECK(moist[2] / cnt[2] > moist[0] / cnt[0] + 0.3);
}

TEST_CASE("loader: configuration errors say what to do") {
  std::string dir = tmpdir("cfg");
  GenerateOptions g;
  g.out_dir = dir;
  g.samples = 1;
  g.size = 8;
  generate(g);
  auto ds = std::make_shared<H5Dataset>(list_files(dir), cosmoflow_mlperf());
  LoaderOptions o;
  o.batch_size = 0;
  CHECK_THROWS_AS(DataLoader(ds, o), ConfigError);
  o.batch_size = 1;
  o.staging = Staging::directory;
  CHECK_THROWS_WITH(DataLoader(ds, o), Catch::Contains("stage_dir"));
  DataLoader ok(ds, LoaderOptions{});
  CHECK_THROWS_WITH(ok.next(), Catch::Contains("start_epoch"));
  CHECK_THROWS_WITH(detect_layout(dir + "/missing.h5"), Catch::Contains("missing.h5"));
  fs::remove_all(dir);
}
