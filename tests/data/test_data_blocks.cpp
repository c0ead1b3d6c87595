// H5Dataset::read_block against numpy (tests/data/write_block_fixtures.py): every layout,
// uneven splits and blocks touching each face, both channel orders; files whose chunks
// outside a block are unreadable (only the block is read); value checks over the block
// only; bad blocks; the DataLoader with a block.
#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "halo/data/dataset.hpp"
#include "halo/data/loader.hpp"

using namespace halo;
using namespace halo::data;

namespace {

std::string root() {
  const char* d = std::getenv("HALO_BLOCK_FIXTURES");
  REQUIRE(d != nullptr);
  return d;
}

struct BlockCase {
  std::string set;
  int64_t sample = 0;
  SpatialBlock block;
  std::string name;
};

std::vector<BlockCase> manifest(const std::string& file) {
  std::ifstream in(root() + "/" + file);
  REQUIRE(in.good());
  std::vector<BlockCase> out;
  std::string l;
  while (std::getline(in, l)) {
    if (l.empty()) continue;
    std::istringstream s(l);
    BlockCase c;
    s >> c.set >> c.sample;
    for (int a = 0; a < 3; ++a) s >> c.block.begin[size_t(a)] >> c.block.end[size_t(a)];
    s >> c.name;
    REQUIRE(bool(s));
    out.push_back(c);
  }
  return out;
}

template <class T>
std::vector<T> load(const std::string& name) {
  std::ifstream in(root() + "/expected/" + name, std::ios::binary | std::ios::ate);
  REQUIRE(in.good());
  std::vector<T> v(size_t(in.tellg()) / sizeof(T));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(v.data()), std::streamsize(v.size() * sizeof(T)));
  return v;
}

// The layout of each set the script writes (`dir`: the set's directory).
std::shared_ptr<H5Dataset> open_set(const std::string& set, const std::string& dir) {
  auto files = list_files(dir);
  if (set == "mlperf" || set == "mlperf_f32") return std::make_shared<H5Dataset>(files, cosmoflow_mlperf());
  if (set == "lbann") return std::make_shared<H5Dataset>(files, cosmoflow_lbann());
  if (set == "raw") return std::make_shared<H5Dataset>(files, cosmoflow_raw(16));
  if (set == "deepcam") return std::make_shared<H5Dataset>(files, deepcam());
  if (set == "custom") {
    Layout l;
    l.data = "fields/t";
    l.label = "fields/class";
    l.axes = "ZYX";
    l.label_kind = LabelKind::mask;
    return std::make_shared<H5Dataset>(files, l);
  }
  return std::make_shared<H5Dataset>(files, detect_layout(files.at(0)));  // packed shards
}

// log1p and min/max normalisation are computed in float by Halo and in double by numpy
void check_close(const std::vector<float>& got, const std::vector<float>& want) {
  REQUIRE(got.size() == want.size());
  for (size_t k = 0; k < got.size(); ++k) REQUIRE(got[k] == Approx(want[k]).epsilon(1e-6).margin(1e-6));
}

// Reads c's block in both channel orders and compares it, and its label, with numpy's.
void check_case(const H5Dataset& ds, const BlockCase& c) {
  const Shape xs = ds.block_shape(c.block);
  const Shape ys = ds.block_label_shape(c.block);
  INFO("set " << c.set << ", sample " << c.sample << ", block " << c.block.str(xs.size() - 1));
  for (bool last : {false, true}) {
    INFO((last ? "channels-last" : "channel-first"));
    std::vector<float> x(size_t(numel(xs)), -1.f);
    std::vector<unsigned char> y(size_t(numel(ys)) * 4);
    ReadScratch scratch;
    ds.read_block(c.sample, c.block, x.data(), y.data(), scratch, last);
    check_close(x, load<float>(c.name + (last ? ".cl.f32" : ".cf.f32")));
    std::vector<unsigned char> want = load<unsigned char>(c.name + ".y");
    if (ds.label_dtype() == DType::f32) {
      std::vector<float> gy(y.size() / 4), wy(want.size() / 4);
      std::memcpy(gy.data(), y.data(), y.size());
      std::memcpy(wy.data(), want.data(), want.size());
      CHECK(gy == wy);
    } else {
      CHECK(y == want);  // int32 class map, cropped
    }
  }
}

}  // namespace

TEST_CASE("read_block equals numpy's crop for every layout, split and channel order") {
  std::map<std::string, std::shared_ptr<H5Dataset>> sets;
  std::map<std::string, int> cases;
  for (const BlockCase& c : manifest("blocks.txt")) {
    auto& ds = sets[c.set];
    if (!ds) ds = open_set(c.set, root() + "/" + c.set);
    check_case(*ds, c);
    ++cases[c.set];
  }
  CHECK(sets.size() == 8);
  for (const auto& [set, n] : cases) CHECK(n >= 10);  // every set got its splits
}

TEST_CASE("read() is read_block of the whole sample") {
  for (const char* set : {"mlperf", "lbann", "raw", "deepcam", "packed2d", "custom"}) {
    INFO(set);
    auto ds = open_set(set, root() + "/" + set);
    const SpatialBlock whole = SpatialBlock::whole(ds->sample_shape());
    CHECK(ds->block_shape(whole) == ds->sample_shape());
    CHECK(ds->block_label_shape(whole) == ds->label_shape());
    for (bool last : {false, true}) {
      std::vector<float> a(size_t(numel(ds->sample_shape()))), b(a.size());
      std::vector<unsigned char> ya(ds->label_bytes()), yb(ya.size());
      ReadScratch s;
      ds->read(ds->size() - 1, a.data(), ya.data(), s, last);
      ds->read_block(ds->size() - 1, whole, b.data(), yb.data(), s, last);
      CHECK(a == b);
      CHECK(ya == yb);
    }
  }
}

TEST_CASE("only the block is read: chunks outside it are unreadable and read_block does not touch them") {
  const auto cases = manifest("sealed.txt");
  REQUIRE(cases.size() == 5);
  for (const BlockCase& c : cases) {
    auto ds = open_set(c.set, root() + "/sealed/" + c.set);
    check_case(*ds, c);  // the block alone reads, values equal numpy's
    const size_t k = ds->sample_shape().size() - 1;
    std::vector<float> x(size_t(numel(ds->sample_shape())));
    std::vector<unsigned char> y(ds->label_bytes());
    ReadScratch s;
    // the whole sample, or the block grown by one voxel along any axis, needs a bad chunk
    CHECK_THROWS_AS(ds->read(c.sample, x.data(), y.data(), s), IOError);
    for (size_t a = 0; a < k; ++a) {
      SpatialBlock grown = c.block;
      if (grown.begin[a] > 0) --grown.begin[a];
      else ++grown.end[a];
      INFO("set " << c.set << ", grown block " << grown.str(k));
      const std::string file = ds->files().at(size_t(ds->ref(c.sample).file));
      CHECK_THROWS_WITH(ds->read_block(c.sample, grown, x.data(), y.data(), s),
                        Catch::Contains(file) && Catch::Contains("dataset '" + ds->layout().data + "'") &&
                            Catch::Contains("block " + grown.str(k)));
    }
  }
}

TEST_CASE("value checks cover the block: a bad value is found in blocks holding it, and only there") {
  struct Poison {
    const char* dir;
    std::array<int64_t, 3> at;  // (D,H,W) of the bad value (write_block_fixtures.py)
    const char* what;
  };
  for (const Poison& p : {Poison{"nan", {5, 2, 6}, "NaN or infinite value"},
                          Poison{"negative", {1, 6, 3}, "negative count"}}) {
    INFO(p.dir);
    const std::string file = root() + "/poison/" + p.dir + "/x.h5";
    H5Dataset ds({file}, cosmoflow_mlperf());
    std::vector<float> x(size_t(numel(ds.sample_shape()))), y(4);
    ReadScratch s;
    SpatialBlock holding, beside;
    for (size_t a = 0; a < 3; ++a) {
      holding.begin[a] = p.at[a];
      holding.end[a] = p.at[a] + 1;
      beside.end[a] = 8;
    }
    beside.begin[0] = p.at[0] + 1;  // every voxel after the bad one along D
    holding.end[1] = 8;             // a slab through it
    CHECK_THROWS_AS(ds.read(0, x.data(), y.data(), s), BadSampleError);
    for (bool last : {false, true}) {
      CHECK_THROWS_WITH(ds.read_block(0, holding, x.data(), y.data(), s, last),
                        Catch::Contains(file) && Catch::Contains("dataset 'x'") && Catch::Contains(p.what) &&
                            Catch::Contains("block " + holding.str()));
      CHECK_NOTHROW(ds.read_block(0, beside, x.data(), y.data(), s, last));
    }
  }
}

TEST_CASE("a bad block is a ShapeError naming the block and the sample shape") {
  auto ds = open_set("mlperf", root() + "/mlperf");  // samples (4, 128, 20, 16)
  std::vector<float> x(size_t(numel(ds->sample_shape()))), y(4);
  ReadScratch s;
  auto read = [&](SpatialBlock b) { ds->read_block(0, b, x.data(), y.data(), s); };
  SpatialBlock past{{0, 0, 0}, {129, 20, 16}}, empty{{5, 0, 0}, {5, 20, 16}}, negative{{0, -1, 0}, {128, 20, 16}};
  CHECK_THROWS_AS(read(past), ShapeError);
  CHECK_THROWS_WITH(read(past), Catch::Contains("[0:129, 0:20, 0:16]") && Catch::Contains("[4,128,20,16]") &&
                                    Catch::Contains("cosmo_0.h5") && Catch::Contains("outside"));
  CHECK_THROWS_WITH(read(empty), Catch::Contains("[5:5, 0:20, 0:16]") && Catch::Contains("empty"));
  CHECK_THROWS_AS(read(negative), ShapeError);
  CHECK_THROWS_AS(ds->block_shape(past), ShapeError);
  // 2D samples use the first two entries; the third is ignored
  auto dc = open_set("deepcam", root() + "/deepcam");  // samples (5, 40, 57)
  SpatialBlock b2{{0, 10, 99}, {40, 20, -3}};
  CHECK(dc->block_shape(b2) == Shape{5, 40, 10});
  CHECK(dc->block_label_shape(b2) == Shape{40, 10});
  CHECK_THROWS_WITH(dc->block_shape(SpatialBlock{{0, 0, 0}, {41, 57, 0}}),
                    Catch::Contains("[0:41, 0:57]") && Catch::Contains("[5,40,57]"));
}

TEST_CASE("the loader with a block delivers (N, C, block...) and counts the block's bytes") {
  auto mlperf = open_set("mlperf", root() + "/mlperf");
  auto deepcam = open_set("deepcam", root() + "/deepcam");
  struct Case {
    std::shared_ptr<H5Dataset> ds;
    SpatialBlock block;
  };
  const std::string stage_dir = (std::filesystem::temp_directory_path() / "halo-test-block-stage").string();
  for (const Case& c : {Case{mlperf, {{43, 0, 5}, {86, 20, 16}}}, Case{deepcam, {{13, 0, 0}, {40, 19, 0}}}}) {
    const Dataset& ds = *c.ds;
    const size_t k = ds.sample_shape().size() - 1;
    INFO(c.ds->layout().format << ", block " << c.block.str(k));
    for (Staging st : {Staging::none, Staging::memory, Staging::directory}) {
      for (MemoryFormat fmt : {MemoryFormat::contiguous, MemoryFormat::channels_last}) {
        INFO("staging " << int(st) << ", format " << int(fmt));
        LoaderOptions o;
        o.batch_size = 2;
        o.shard.shuffle = false;
        o.block = c.block;
        o.staging = st;
        o.stage_dir = stage_dir;
        o.memory_format = fmt;
        DataLoader dl(c.ds, o);
        dl.start_epoch(0);
        const Batch* b = dl.next();
        REQUIRE(b != nullptr);
        REQUIRE(b->size == 2);
        Shape want_x{2}, want_y{2};
        for (int64_t d : ds.block_shape(c.block)) want_x.push_back(d);
        for (int64_t d : ds.block_label_shape(c.block)) want_y.push_back(d);
        CHECK(b->x.shape() == want_x);
        CHECK(b->y.shape() == want_y);
        CHECK((fmt == MemoryFormat::contiguous ? b->x.is_contiguous() : b->x.is_channels_last()));
        // the rows are read_block's values, in logical order
        Tensor x = b->x.contiguous();
        const int64_t per = x.numel() / 2;
        for (int64_t r = 0; r < 2; ++r) {
          std::vector<float> want(static_cast<size_t>(per));
          std::vector<unsigned char> wy(ds.block_label_bytes(c.block));
          ReadScratch s;
          ds.read_block(b->samples[size_t(r)], c.block, want.data(), wy.data(), s);
          CHECK(std::vector<float>(x.data<float>() + r * per, x.data<float>() + (r + 1) * per) == want);
          CHECK(std::memcmp(static_cast<const unsigned char*>(b->y.raw_data()) + size_t(r) * wy.size(), wy.data(),
                            wy.size()) == 0);
        }
        CHECK(dl.next() == nullptr);
        if (st == Staging::none)
          CHECK(dl.epoch_stats().bytes ==
                Approx(2.0 * double(ds.block_stored_bytes(c.block) + ds.block_label_bytes(c.block))));
      }
    }
  }
  std::filesystem::remove_all(stage_dir);
  // the block is checked when the loader is made
  LoaderOptions o;
  o.block = SpatialBlock{{0, 0, 0}, {128, 21, 16}};
  CHECK_THROWS_WITH(DataLoader(mlperf, o), Catch::Contains("LoaderOptions::block") && Catch::Contains("[0:128, 0:21, 0:16]"));
}
