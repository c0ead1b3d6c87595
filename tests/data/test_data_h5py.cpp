// Loaders against files written by h5py (tests/data/write_fixtures.py): every layout, every
// element, axis order included; and the errors bad files produce.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <string>

#include "halo/data/dataset.hpp"
#include "halo/data/loader.hpp"

using namespace halo;
using namespace halo::data;

namespace {
std::string root() {
  const char* d = std::getenv("HALO_DATA_FIXTURES");
  REQUIRE(d != nullptr);
  return d;
}
std::string fx(const std::string& rel) { return root() + "/" + rel; }
int cosmo_count(int i, int d, int h, int w, int c) { return (d * 7 + h * 3 + w + c * 11 + i * 5) % 50; }
std::vector<float> target(int i) { return {float(i), float(i) + 0.5f, -float(i), 0.25f * float(i)}; }

/// The h5py-written sample layouts: CosmoFlow MLPerf and LBANN, DeepCAM.
struct LayoutCase {
  std::vector<std::string> files;
  Layout layout;
};
std::vector<LayoutCase> layout_cases() {
  std::vector<LayoutCase> cases;
  cases.push_back({list_files(fx("mlperf")), cosmoflow_mlperf()});
  cases.push_back({list_files(fx("lbann")), cosmoflow_lbann()});
  auto deepcam_files = list_files(fx("deepcam"));
  cases.push_back({deepcam_files, detect_layout(deepcam_files[0])});
  return cases;
}

std::vector<float> read_x(const H5Dataset& ds, int64_t i, std::vector<float>& y) {
  std::vector<float> x(static_cast<size_t>(numel(ds.sample_shape())));
  y.assign(static_cast<size_t>(numel(ds.label_shape())), 0.f);
  ReadScratch s;
  ds.read(i, x.data(), y.data(), s);
  return x;
}
}  // namespace

TEST_CASE("h5py files: CosmoFlow MLPerf layout, log1p and (D,H,W,C) -> (C,D,H,W)") {
  auto files = list_files(fx("mlperf"));
  REQUIRE(files.size() == 3);
  H5Dataset ds(files, detect_layout(files[0]));
  CHECK(ds.layout().format == "cosmoflow-mlperf");
  REQUIRE(ds.size() == 3);
  CHECK(ds.sample_shape() == Shape{4, 8, 8, 8});
  for (int i = 0; i < 3; ++i) {
    std::vector<float> y;
    auto x = read_x(ds, i, y);
    CHECK(y == target(i));
    for (int c = 0; c < 4; ++c)
      for (int d = 0; d < 8; ++d)
        for (int h = 0; h < 8; ++h)
          for (int w = 0; w < 8; ++w)
            REQUIRE(x[size_t(((c * 8 + d) * 8 + h) * 8 + w)] == Approx(std::log1p(cosmo_count(i, d, h, w, c))));
  }
}

TEST_CASE("h5py files: CosmoFlow LBANN layout is read as stored") {
  auto files = list_files(fx("lbann"));
  H5Dataset ds(files, cosmoflow_lbann());
  REQUIRE(ds.size() == 2);
  std::vector<float> y;
  auto x = read_x(ds, 1, y);
  CHECK(y == target(1));
  for (int c = 0; c < 4; ++c)
    for (int d = 0; d < 8; d += 3)
      for (int h = 0; h < 8; ++h)
        for (int w = 0; w < 8; ++w)
          REQUIRE(x[size_t(((c * 8 + d) * 8 + h) * 8 + w)] == Approx(cosmo_count(1, d, h, w, c) / 10.0));
}

TEST_CASE("h5py files: raw universe served as sub-volumes by hyperslab") {
  H5Dataset ds({fx("raw/universe_0.h5")}, cosmoflow_raw(8));
  REQUIRE(ds.size() == 8);
  CHECK(ds.sample_shape() == Shape{4, 8, 8, 8});
  for (int64_t k = 0; k < 8; ++k) {
    auto o = ds.ref(k).origin;
    std::vector<float> y;
    auto x = read_x(ds, k, y);
    CHECK(y == target(7));
    for (int c = 0; c < 4; ++c)
      for (int d = 0; d < 8; ++d)
        for (int h = 0; h < 8; ++h)
          for (int w = 0; w < 8; ++w)
            REQUIRE(x[size_t(((c * 8 + d) * 8 + h) * 8 + w)] ==
                    Approx(std::log1p(cosmo_count(0, int(o[0]) + d, int(o[1]) + h, int(o[2]) + w, c))));
  }
}

TEST_CASE("h5py files: DeepCAM layout, min/max normalisation from stats.h5 and class maps") {
  auto files = list_files(fx("deepcam"));
  REQUIRE(files.size() == 2);  // stats.h5 is not a sample file
  H5Dataset ds(files, detect_layout(files[0]));
  CHECK(ds.layout().format == "deepcam");
  CHECK(ds.sample_shape() == Shape{3, 6, 9});
  CHECK(ds.label_shape() == Shape{6, 9});
  CHECK(ds.label_dtype() == DType::i32);
  // stats over both files: min at (h=0, w=8, i=0), max at (h=5, w=0, i=1), per channel
  for (int i = 0; i < 2; ++i) {
    std::vector<float> x(3 * 54);
    std::vector<int32_t> y(54);
    ReadScratch s;
    ds.read(i, x.data(), y.data(), s);
    for (int c = 0; c < 3; ++c) {
      double lo = -0.25 * 8 + c * 10.0, hi = 1.5 * 5 + c * 10.0 + 1;
      for (int h = 0; h < 6; ++h)
        for (int w = 0; w < 9; ++w) {
          double v = h * 1.5 - w * 0.25 + c * 10.0 + i;
          REQUIRE(x[size_t((c * 6 + h) * 9 + w)] == Approx((v - lo) / (hi - lo)).margin(1e-6));
          REQUIRE(y[size_t(h * 9 + w)] == (h + 2 * w + i) % 3);
        }
    }
  }
}

TEST_CASE("h5py files: packed shard with custom axes and uint8 samples") {
  H5Dataset ds({fx("packed/shard-0.h5")}, detect_layout(fx("packed/shard-0.h5")));
  REQUIRE(ds.size() == 5);
  CHECK(ds.sample_shape() == Shape{2, 4, 6});
  for (int n = 0; n < 5; ++n) {
    std::vector<float> y;
    auto x = read_x(ds, n, y);
    CHECK(y == std::vector<float>{float(n), -float(n)});
    for (int c = 0; c < 2; ++c)
      for (int h = 0; h < 4; ++h)
        for (int w = 0; w < 6; ++w) REQUIRE(x[size_t((c * 4 + h) * 6 + w)] == float((n * 13 + (h * 6 + w) * 2 + c) % 200));
  }
}

TEST_CASE("h5py files: the loader delivers every sample once, in batches") {
  auto ds = std::make_shared<H5Dataset>(list_files(fx("mlperf")), cosmoflow_mlperf());
  LoaderOptions o;
  o.batch_size = 2;
  DataLoader dl(ds, o);
  dl.start_epoch(0);
  std::vector<int> seen(3, 0);
  int batches = 0;
  while (const Batch* b = dl.next()) {
    ++batches;
    CHECK(b->x.shape()[0] == b->size);
    auto y = b->y.to_vector<float>();
    for (int64_t k = 0; k < b->size; ++k) {
      int i = int(y[size_t(k * 4)]);  // target(i)[0] == i
      CHECK(i == b->samples[size_t(k)]);
      seen[size_t(i)]++;
    }
  }
  CHECK(batches == 2);
  CHECK(seen == std::vector<int>{1, 1, 1});
}

TEST_CASE("h5py files: channels-last delivery holds the same logical values for every layout") {
  std::vector<LayoutCase> cases = layout_cases();
  cases.push_back({{fx("packed/shard-0.h5")}, detect_layout(fx("packed/shard-0.h5"))});
  for (const auto& c : cases) {
    auto ds = std::make_shared<H5Dataset>(c.files, c.layout);
    INFO("layout " << ds->layout().format);
    LoaderOptions o;
    o.batch_size = 2;
    o.shard.shuffle = false;
    o.memory_format = MemoryFormat::contiguous;
    DataLoader plain(ds, o);
    o.memory_format = MemoryFormat::channels_last;
    DataLoader cl(ds, o);
    plain.start_epoch(0);
    cl.start_epoch(0);
    int batches = 0;
    while (const Batch* a = plain.next()) {
      const Batch* b = cl.next();
      REQUIRE(b != nullptr);
      CHECK(a->x.is_contiguous());
      CHECK(b->x.is_channels_last());
      CHECK_FALSE(b->x.is_contiguous());
      CHECK(a->samples == b->samples);
      CHECK(a->x.to_vector<float>() == b->x.to_vector<float>());
      ++batches;
    }
    CHECK(batches > 0);
  }
}

TEST_CASE("h5py files: bf16 batches are the f32 batches rounded to nearest, in both formats, staged or not") {
  // LoaderOptions::dtype = bf16 (training.precision=bf16): the values the f32 loader
  // delivers, each rounded once (relative error at most bf16's unit roundoff 2^-8), transforms (log1p,
  // normalisation) applied in f32 before the rounding.
  for (const auto& c : layout_cases())
    for (MemoryFormat fmt : {MemoryFormat::contiguous, MemoryFormat::channels_last})
      for (Staging staging : {Staging::none, Staging::memory}) {
        auto ds = std::make_shared<H5Dataset>(c.files, c.layout);
        INFO("layout " << ds->layout().format << ", channels-last " << (fmt == MemoryFormat::channels_last)
                       << ", staged " << (staging == Staging::memory));
        LoaderOptions o;
        o.batch_size = 2;
        o.shard.shuffle = false;
        o.memory_format = fmt;
        o.staging = staging;
        DataLoader full(ds, o);
        o.dtype = DType::bf16;
        DataLoader half(ds, o);
        full.start_epoch(0);
        half.start_epoch(0);
        int batches = 0;
        while (const Batch* a = full.next()) {
          const Batch* b = half.next();
          REQUIRE(b != nullptr);
          REQUIRE(b->x.dtype() == DType::bf16);
          CHECK(b->x.shape() == a->x.shape());
          CHECK(b->x.strides() == a->x.strides());
          CHECK(a->samples == b->samples);
          const std::vector<float> f = a->x.to_vector<float>();
          const std::vector<float> r = b->x.to(DType::f32).to_vector<float>();
          REQUIRE(f.size() == r.size());
          size_t off = 0, inexact = 0;
          for (size_t i = 0; i < f.size(); ++i) {
            off += std::fabs(r[i] - f[i]) > std::ldexp(std::fabs(f[i]), -8);
            off += r[i] != float(bf16(f[i]));
            inexact += r[i] != f[i];
          }
          CHECK(off == 0);
          if (ds->layout().format == "deepcam") CHECK(inexact > 0);  // normalised values do round
          CHECK(a->y.to(DType::f32).to_vector<float>() == b->y.to(DType::f32).to_vector<float>());
          ++batches;
        }
        CHECK(batches > 0);
        CHECK(half.next() == nullptr);
      }
  auto ds = std::make_shared<H5Dataset>(list_files(fx("lbann")), cosmoflow_lbann());
  LoaderOptions o;
  o.dtype = DType::f16;
  CHECK_THROWS_WITH(DataLoader(ds, o), Catch::Contains("LoaderOptions::dtype is f16"));
}

TEST_CASE("h5py files: bad files give errors naming the file and the dataset") {
  std::string good = fx("mlperf/cosmo_0.h5");
  SECTION("wrong shape") {
    H5Dataset ds({good, fx("bad/wrongshape.h5")}, cosmoflow_mlperf());
    std::vector<float> x(4 * 512), y(4);
    ReadScratch s;
    ds.read(0, x.data(), y.data(), s);
    CHECK_THROWS_WITH(ds.read(1, x.data(), y.data(), s),
                      Catch::Contains("wrongshape.h5") && Catch::Contains("'x'") && Catch::Contains("[8,8,8,3]"));
  }
  SECTION("mislabelled") {
    H5Dataset ds({good, fx("bad/mislabelled.h5")}, cosmoflow_mlperf());
    std::vector<float> x(4 * 512), y(4);
    ReadScratch s;
    CHECK_THROWS_WITH(ds.read(1, x.data(), y.data(), s), Catch::Contains("mislabelled.h5") && Catch::Contains("'y'"));
  }
  SECTION("truncated, through the loader's reader threads") {
    auto ds = std::make_shared<H5Dataset>(std::vector<std::string>{good, fx("bad/truncated.h5")}, cosmoflow_mlperf());
    LoaderOptions o;
    o.shard.shuffle = false;
    DataLoader dl(ds, o);
    dl.start_epoch(0);
    REQUIRE(dl.next() != nullptr);
    CHECK_THROWS_AS(dl.next(), IOError);
    dl.start_epoch(1);
    dl.next();
    CHECK_THROWS_WITH(dl.next(), Catch::Contains("rank 0") && Catch::Contains("truncated.h5"));
  }
  SECTION("missing stats file") {
    CHECK_THROWS_WITH(H5Dataset({fx("deepcam/data-0.h5")}, deepcam(fx("deepcam/nostats.h5"))),
                      Catch::Contains("nostats.h5"));
  }
}

// ---- [fault]: one bad sample among good ones (tests/data/write_fixtures.py, write_faults) ----
namespace {
struct FaultCase {
  const char* dir;
  int bad;             // dataset index of the bad sample
  const char* dataset;
  const char* what;
};
const FaultCase kFaults[] = {
    {"cosmo_nan_x", 2, "'x'", "NaN or infinite value"},
    {"cosmo_negative", 1, "'x'", "negative count"},
    {"cosmo_nan_y", 3, "'y'", "NaN or infinite target"},
    {"deepcam_nan", 1, "'climate/data'", "NaN or infinite value"},
};

std::shared_ptr<H5Dataset> fault_set(const FaultCase& c) {
  auto files = list_files(fx(std::string("fault/") + c.dir));
  return std::make_shared<H5Dataset>(files, detect_layout(files[0]));
}

bool all_finite(const Tensor& t) {
  const float* p = t.data<float>();
  for (int64_t k = 0; k < t.numel(); ++k)
    if (!std::isfinite(p[k])) return false;
  return true;
}
}  // namespace

TEST_CASE("bad samples: the loader stops naming rank, file, dataset, sample and what is wrong", "[fault]") {
  for (const auto& c : kFaults) {
    INFO(c.dir);
    auto ds = fault_set(c);
    LoaderOptions o;
    o.batch_size = 2;
    o.shard.shuffle = false;
    DataLoader dl(ds, o);
    dl.start_epoch(0);
    const std::string file = ds->files().at(size_t(c.bad));
    auto drain = [&] {
      while (dl.next()) {
      }
    };
    CHECK_THROWS_WITH(drain(), Catch::Contains("rank 0") && Catch::Contains(file) && Catch::Contains(c.dataset) &&
                                   Catch::Contains(str("sample ", c.bad)) && Catch::Contains(c.what));
    // the dataset alone throws the typed error too
    std::vector<float> x(size_t(numel(ds->sample_shape()))), y(size_t(numel(ds->label_shape())));
    ReadScratch s;
    CHECK_THROWS_AS(ds->read(c.bad, x.data(), y.data(), s), BadSampleError);
  }
}

TEST_CASE("bad samples: skip replaces them, keeps batch count and size, counts them every epoch", "[fault]") {
  for (const auto& c : kFaults) {
    INFO(c.dir);
    auto ds = fault_set(c);
    for (Staging st : {Staging::none, Staging::memory}) {
      LoaderOptions o;
      o.batch_size = 2;
      o.staging = st;
      o.on_bad_sample = BadSamplePolicy::skip;
      DataLoader dl(ds, o);
      for (int epoch = 0; epoch < 2; ++epoch) {
        dl.start_epoch(epoch);
        int64_t batches = 0, skipped = 0, samples = 0;
        while (const Batch* b = dl.next()) {
          ++batches;
          samples += b->size;
          skipped += b->skipped;
          for (int64_t i : b->samples) CHECK(i != c.bad);
          CHECK(all_finite(b->x));
          if (b->y.dtype() == DType::f32) CHECK(all_finite(b->y));
        }
        CHECK(batches == dl.batches_per_epoch());
        CHECK(samples == ds->size());  // no batch is shorter for the bad sample
        CHECK(skipped == 1);
        CHECK(dl.epoch_stats().skipped_samples == 1);
      }
    }
  }
}
