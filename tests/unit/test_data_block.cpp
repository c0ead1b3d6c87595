// SpatialBlock and the default Dataset::read_block (read the whole sample, crop it) over
// sources in memory, 1 to 3 spatial axes, both channel orders; bad blocks; the DataLoader
// with LoaderOptions::block (shapes, values, staging, read statistics).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <unistd.h>

#include "halo/data/loader.hpp"
#include "halo/data/memory.hpp"

using namespace halo;
using namespace halo::data;
namespace fs = std::filesystem;

namespace {

// Sample i of shape (C, spatial...) holds 10000 i + 1000 c + 100 d + 10 h + w (extents < 10),
// spatial axes taken from the right: (C, W), (C, H, W), (C, D, H, W).
float value(int64_t i, int64_t c, const std::array<int64_t, 3>& pos, size_t k) {
  float v = float(10000 * i + 1000 * c);
  for (size_t j = 0; j < k; ++j) v += float(pos[j]) * std::pow(10.f, float(k - 1 - j));
  return v;
}

// x: f32 (n, C, spatial...) numbered as above; y: i32 class maps (spatial...) = i + the
// position's value mod 7, or f32 vectors (i, -i).
Tensor numbered_x(int64_t n, const Shape& sample) {
  Shape s{n};
  s.insert(s.end(), sample.begin(), sample.end());
  Tensor x = Tensor::empty(s);
  const size_t k = sample.size() - 1;
  const int64_t spatial = numel(sample) / sample[0];
  float* p = x.data<float>();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < sample[0]; ++c)
      for (int64_t f = 0; f < spatial; ++f) {
        std::array<int64_t, 3> pos{0, 0, 0};
        for (size_t j = k, r = size_t(f); j-- > 0;) {
          pos[j] = int64_t(r) % sample[j + 1];
          r /= size_t(sample[j + 1]);
        }
        *p++ = value(i, c, pos, k);
      }
  return x;
}

Tensor map_labels(int64_t n, const Shape& sample) {
  Shape s{n};
  s.insert(s.end(), sample.begin() + 1, sample.end());
  Tensor y = Tensor::empty(s, DType::i32);
  const int64_t per = numel(sample) / sample[0];
  for (int64_t i = 0; i < n; ++i)
    for (int64_t f = 0; f < per; ++f) y.data<int32_t>()[i * per + f] = int32_t((i + f) % 7);
  return y;
}

// The crop the default read_block must equal, by index arithmetic on the numbering.
std::vector<float> expected_x(int64_t i, const Shape& sample, const SpatialBlock& b, bool channels_last) {
  const size_t k = sample.size() - 1;
  std::vector<float> out;
  std::array<int64_t, 3> lo{0, 0, 0}, hi{1, 1, 1};
  for (size_t j = 0; j < k; ++j) lo[j] = b.begin[j], hi[j] = b.end[j];
  auto at = [&](int64_t c, int64_t a0, int64_t a1, int64_t a2) { out.push_back(value(i, c, {a0, a1, a2}, k)); };
  if (!channels_last) {
    for (int64_t c = 0; c < sample[0]; ++c)
      for (int64_t a0 = lo[0]; a0 < hi[0]; ++a0)
        for (int64_t a1 = lo[1]; a1 < hi[1]; ++a1)
          for (int64_t a2 = lo[2]; a2 < hi[2]; ++a2) at(c, a0, a1, a2);
  } else {
    for (int64_t a0 = lo[0]; a0 < hi[0]; ++a0)
      for (int64_t a1 = lo[1]; a1 < hi[1]; ++a1)
        for (int64_t a2 = lo[2]; a2 < hi[2]; ++a2)
          for (int64_t c = 0; c < sample[0]; ++c) at(c, a0, a1, a2);
  }
  return out;
}

std::vector<int32_t> expected_map(int64_t i, const Shape& sample, const SpatialBlock& b) {
  const size_t k = sample.size() - 1;
  std::array<int64_t, 3> lo{0, 0, 0}, hi{1, 1, 1}, ext{1, 1, 1};
  for (size_t j = 0; j < k; ++j) lo[j] = b.begin[j], hi[j] = b.end[j], ext[j] = sample[j + 1];
  std::vector<int32_t> out;
  for (int64_t a0 = lo[0]; a0 < hi[0]; ++a0)
    for (int64_t a1 = lo[1]; a1 < hi[1]; ++a1)
      for (int64_t a2 = lo[2]; a2 < hi[2]; ++a2) out.push_back(int32_t((i + (a0 * ext[1] + a1) * ext[2] + a2) % 7));
  return out;
}

// Uneven 3-way splits of every axis, a block per corner (together touching every face),
// an interior block and the whole sample.
std::vector<SpatialBlock> test_blocks(const Shape& sample) {
  const size_t k = sample.size() - 1;
  const SpatialBlock whole = SpatialBlock::whole(sample);
  std::vector<SpatialBlock> out{whole};
  for (size_t a = 0; a < k; ++a) {
    const int64_t e = sample[a + 1], step = (e + 2) / 3;
    for (int64_t lo = 0; lo < e; lo += step) {
      SpatialBlock b = whole;
      b.begin[a] = lo;
      b.end[a] = std::min(e, lo + step);
      out.push_back(b);
    }
  }
  for (int corner = 0; corner < (1 << k); ++corner) {
    SpatialBlock b = whole;
    for (size_t a = 0; a < k; ++a) {
      const int64_t h = (sample[a + 1] + 1) / 2;
      if ((corner >> a) & 1) b.begin[a] = h;
      else b.end[a] = h;
    }
    out.push_back(b);
  }
  SpatialBlock inner = whole;
  for (size_t a = 0; a < k; ++a)
    if (sample[a + 1] > 2) inner.begin[a] = 1, inner.end[a] = sample[a + 1] - 1;
  out.push_back(inner);
  return out;
}

// Checks read_block of every sample, block and channel order of `ds` against the crop.
void check_crops(const Dataset& ds) {
  const Shape& sample = ds.sample_shape();
  const size_t k = sample.size() - 1;
  ReadScratch scratch;  // shared across reads, as the loader's threads do
  for (const SpatialBlock& b : test_blocks(sample))
    for (int64_t i = 0; i < ds.size(); ++i)
      for (bool last : {false, true}) {
        INFO("sample " << i << ", block " << b.str(k) << (last ? ", channels-last" : ""));
        std::vector<float> x(size_t(numel(ds.block_shape(b))));
        std::vector<unsigned char> y(ds.block_label_bytes(b));
        ds.read_block(i, b, x.data(), y.data(), scratch, last);
        REQUIRE(x == expected_x(i, sample, b, last));
        if (ds.label_is_map()) {
          std::vector<int32_t> m(y.size() / 4);
          std::memcpy(m.data(), y.data(), y.size());
          REQUIRE(m == expected_map(i, sample, b));
        } else {
          std::vector<float> t(y.size() / 4);
          std::memcpy(t.data(), y.data(), y.size());
          REQUIRE(t == std::vector<float>{float(i), -float(i)});
        }
      }
}

Tensor vector_labels(int64_t n) {
  Tensor y = Tensor::empty({n, 2});
  for (int64_t i = 0; i < n; ++i) y.data<float>()[2 * i] = float(i), y.data<float>()[2 * i + 1] = -float(i);
  return y;
}

}  // namespace

TEST_CASE("SpatialBlock: extents, voxels, text, the whole sample") {
  SpatialBlock b{{0, 43, 2}, {64, 86, 9}};
  CHECK(b.extent(0) == 64);
  CHECK(b.extent(1) == 43);
  CHECK(b.numel() == 64 * 43 * 7);
  CHECK(b.numel(2) == 64 * 43);
  CHECK(b.str() == "[0:64, 43:86, 2:9]");
  CHECK(b.str(2) == "[0:64, 43:86]");
  CHECK(SpatialBlock::whole({4, 128, 128, 128}) == SpatialBlock{{0, 0, 0}, {128, 128, 128}});
  CHECK(SpatialBlock::whole({16, 768, 1152}).str(2) == "[0:768, 0:1152]");
  CHECK(SpatialBlock::whole({16, 768, 1152}) != b);
  CHECK_THROWS_AS(SpatialBlock::whole({4}), ShapeError);
  CHECK(b.fits({4, 64, 128, 9}));
  CHECK_FALSE(b.fits({4, 64, 85, 9}));
  CHECK_FALSE(SpatialBlock{}.fits({4, 8, 8, 8}));  // empty
  CHECK(SpatialBlock{{0, 0, 7}, {5, 5, -1}}.fits({1, 5, 5}));  // 2D: the third pair is ignored
  CHECK_NOTHROW(check_block(b, {4, 64, 128, 9}));
  CHECK_THROWS_AS(check_block(b, {4, 64, 85, 9}), ShapeError);
}

TEST_CASE("default read_block: ArrayDataset crops equal the numbering, 1 to 3 spatial axes, both orders") {
  for (const Shape& sample : {Shape{2, 5, 4, 3}, Shape{3, 7, 5}, Shape{2, 9}}) {
    INFO("sample shape " << to_string(sample));
    Tensor x = numbered_x(3, sample);
    {
      INFO("class-map labels, contiguous x");
      ArrayDataset ds(x, map_labels(3, sample));
      REQUIRE(ds.label_is_map());
      check_crops(ds);
    }
    {
      INFO("label vectors, channels-last x");
      ArrayDataset ds(sample.size() > 2 ? x.to_memory_format(MemoryFormat::channels_last) : x, vector_labels(3));
      REQUIRE_FALSE(ds.label_is_map());
      check_crops(ds);
    }
  }
}

TEST_CASE("default read_block: a CallbackDataset storing channels-last is cropped in either order") {
  const Shape sample{2, 6, 5, 4};
  // stored as (N, D, H, W, C): each sample in the order the function writes
  Tensor whole = numbered_x(4, sample).to_memory_format(MemoryFormat::channels_last);
  REQUIRE(whole.is_channels_last());
  CallbackDataset::Spec spec;
  spec.size = 4;
  spec.sample_shape = sample;
  spec.label_shape = {2};
  spec.channels_last = true;
  CallbackDataset ds(spec, [&](int64_t i, float* x, void* y) {
    const int64_t n = numel(sample);
    std::copy(whole.data<float>() + i * n, whole.data<float>() + (i + 1) * n, x);
    auto* t = static_cast<float*>(y);
    t[0] = float(i);
    t[1] = -float(i);
  });
  check_crops(ds);
}

TEST_CASE("default read_block: a bad block is a ShapeError naming the block, the sample shape and the sample") {
  ArrayDataset ds(numbered_x(2, {2, 5, 4, 3}), vector_labels(2), "fields");
  std::vector<float> x(120), y(2);
  ReadScratch s;
  auto read = [&](SpatialBlock b) { ds.read_block(1, b, x.data(), y.data(), s); };
  CHECK_THROWS_WITH(read({{0, 0, 0}, {5, 5, 3}}), Catch::Contains("[0:5, 0:5, 0:3]") && Catch::Contains("[2,5,4,3]") &&
                                                      Catch::Contains("array 'fields', sample 1") &&
                                                      Catch::Contains("outside"));
  CHECK_THROWS_WITH(read({{0, 2, 0}, {5, 2, 3}}), Catch::Contains("empty"));
  CHECK_THROWS_AS(read({{-1, 0, 0}, {5, 4, 3}}), ShapeError);
  CHECK_THROWS_AS(read({{0, 0, 0}, {0, 0, 0}}), ShapeError);  // the default-constructed block is empty
  CHECK_THROWS_AS(ds.block_shape({{0, 0, 0}, {6, 4, 3}}), ShapeError);
  // more than 3 spatial axes cannot be cut
  ArrayDataset four(Tensor::zeros({1, 1, 2, 2, 2, 2}), vector_labels(1));
  CHECK_THROWS_WITH(four.block_shape({{0, 0, 0}, {1, 1, 1}}), Catch::Contains("4 spatial axes"));
}

TEST_CASE("default read_block: value checks apply to the whole sample it reads") {
  Tensor x = numbered_x(1, {1, 4, 4});
  x.data<float>()[15] = std::numeric_limits<float>::quiet_NaN();  // at (3, 3)
  ArrayDataset ds(x, vector_labels(1));
  std::vector<float> out(4), y(2);
  ReadScratch s;
  CHECK_THROWS_AS(ds.read_block(0, {{0, 0, 0}, {2, 2, 0}}, out.data(), y.data(), s), BadSampleError);
}

TEST_CASE("loader with a block: (N, C, block...) batches of the right values, staged or not") {
  const Shape sample{2, 5, 4, 3};
  auto ds = std::make_shared<ArrayDataset>(numbered_x(5, sample), map_labels(5, sample));
  const SpatialBlock block{{2, 0, 1}, {5, 3, 3}};
  const std::string dir = (fs::temp_directory_path() / ("halo-test-block-" + std::to_string(::getpid()))).string();
  for (auto fmt : {MemoryFormat::contiguous, MemoryFormat::channels_last})
    for (auto staging : {Staging::none, Staging::memory, Staging::directory}) {
      INFO("format " << int(fmt) << " staging " << int(staging));
      LoaderOptions o;
      o.batch_size = 2;
      o.memory_format = fmt;
      o.staging = staging;
      o.stage_dir = dir;
      o.block = block;
      DataLoader l(ds, o);
      for (int64_t epoch = 0; epoch < 2; ++epoch) {
        l.start_epoch(epoch);
        int64_t seen = 0, rows = 0;
        while (const Batch* b = l.next()) {
          rows += b->size;
          CHECK(b->x.shape() == Shape{b->size, 2, 3, 3, 2});
          CHECK(b->y.shape() == Shape{b->size, 3, 3, 2});
          Tensor x = b->x.contiguous();
          for (int64_t r = 0; r < b->size; ++r) {
            const int64_t i = b->samples[size_t(r)];
            std::vector<float> got(x.data<float>() + r * 36, x.data<float>() + (r + 1) * 36);
            CHECK(got == expected_x(i, sample, block, false));
            std::vector<int32_t> m(b->y.data<int32_t>() + r * 18, b->y.data<int32_t>() + (r + 1) * 18);
            CHECK(m == expected_map(i, sample, block));
          }
          seen += b->real;
        }
        CHECK(seen == 5);
        // bytes: the block's share of each sample (2 of 5 along D, 3 of 4 along H, 2 of 3
        // along W) and of its label map
        CHECK(l.epoch_stats().bytes == Approx(double(rows) * (36 + 18) * 4.0));
      }
    }
  fs::remove_all(dir);
}

TEST_CASE("loader with a block: configuration errors") {
  auto ds = std::make_shared<ArrayDataset>(numbered_x(2, {2, 5, 4, 3}), vector_labels(2));
  LoaderOptions o;
  o.block = SpatialBlock{{0, 0, 0}, {5, 4, 4}};
  CHECK_THROWS_WITH(DataLoader(ds, o), Catch::Contains("LoaderOptions::block") && Catch::Contains("[0:5, 0:4, 0:4]"));
  // the ranks sharing a sample each check only their block: skipping could make them disagree
  o.block = SpatialBlock{{0, 0, 0}, {5, 4, 3}};
  o.on_bad_sample = BadSamplePolicy::skip;
  CHECK_THROWS_AS(DataLoader(ds, o), ConfigError);
}
