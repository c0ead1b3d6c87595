// H5Dataset::index(): a dataset built from another's index opens no file and is the same
// dataset (sizes, shapes, sample references, statistics, every sample's bytes), for every
// layout the constructor treats differently (one sample per file, sub-volumes, packed shards,
// minmax statistics beside the files or inside the shards).
#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>
#include <unistd.h>

#include <hdf5.h>  // for data/h5.hpp

#include "data/h5.hpp"  // open_file_count (private)
#include "halo/data/dataset.hpp"
#include "halo/data/synthetic.hpp"

using namespace halo;
using namespace halo::data;
namespace fs = std::filesystem;

namespace {

std::string tmpdir(const std::string& name) {
  auto p = fs::temp_directory_path() / ("halo-test-index-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

std::vector<std::string> generate_small(const std::string& format, const std::string& dir) {
  GenerateOptions g;
  g.format = format;
  g.out_dir = dir;
  g.samples = format == "cosmoflow-raw" ? 2 : 7;
  g.size = 8;
  g.height = 8;
  g.width = 12;
  g.per_shard = 3;  // 7 samples: shards of 3, 3 and 1
  generate(g);
  return list_files(dir);
}

// Every sample of `b` reads to the same bytes as in `a`, in both delivered orders, raw too.
void require_same_samples(const H5Dataset& a, const H5Dataset& b) {
  REQUIRE(a.size() == b.size());
  const size_t xn = size_t(numel(a.sample_shape())), yb = a.label_bytes();
  std::vector<float> xa(xn), xb(xn);
  std::vector<unsigned char> ya(yb), yb_(yb), ra(a.stored_bytes()), rb(b.stored_bytes());
  ReadScratch sa, sb;
  for (int64_t i = 0; i < a.size(); ++i) {
    INFO("sample " << i << " (" << a.describe(i) << ")");
    REQUIRE(b.describe(i) == a.describe(i));
    for (bool channels_last : {false, true}) {
      std::fill(xb.begin(), xb.end(), -1.f);
      a.read(i, xa.data(), ya.data(), sa, channels_last);
      b.read(i, xb.data(), yb_.data(), sb, channels_last);
      REQUIRE(std::memcmp(xa.data(), xb.data(), xn * sizeof(float)) == 0);
      REQUIRE(std::memcmp(ya.data(), yb_.data(), yb) == 0);
    }
    a.read_raw(i, ra.data(), ya.data());
    b.read_raw(i, rb.data(), yb_.data());
    REQUIRE(std::memcmp(ra.data(), rb.data(), ra.size()) == 0);
  }
}

}  // namespace

TEST_CASE("index: a dataset built from another's index opens no file and reads the same samples") {
  struct Case {
    std::string format;
    Layout layout;
  };
  const std::vector<Case> cases{
      {"cosmoflow-mlperf", cosmoflow_mlperf()},  // one sample per file, int16, log1p
      {"cosmoflow-lbann", cosmoflow_lbann()},    // float32 read in place
      {"cosmoflow-raw", cosmoflow_raw(4)},       // sub-volumes: 8 cubes per file
      {"deepcam", deepcam()},                    // minmax statistics from stats.h5 beside the files
      {"packed-cosmoflow", {}},                  // packed shards of unequal length
      {"packed-deepcam", {}},                    // packed, with the statistics inside the shards
  };
  for (const Case& c : cases) {
    SECTION(c.format) {
      const std::string dir = tmpdir(c.format);
      const auto files = generate_small(c.format, dir);
      const Layout layout = c.layout.format == "custom" ? detect_layout(files[0]) : c.layout;
      const H5Dataset direct(files, layout, Driver::posix);
      const std::string index = direct.index();

      const int64_t opened = open_file_count();
      const H5Dataset from_index(files, layout, index, Driver::posix);
      REQUIRE(open_file_count() == opened);  // built without asking the file system anything

      REQUIRE(from_index.size() == direct.size());
      REQUIRE(direct.size() == (c.format == "cosmoflow-raw" ? 16 : 7));
      REQUIRE(from_index.sample_shape() == direct.sample_shape());
      REQUIRE(from_index.label_shape() == direct.label_shape());
      REQUIRE(from_index.label_dtype() == direct.label_dtype());
      REQUIRE(from_index.stored_shape() == direct.stored_shape());
      REQUIRE(from_index.stored_type() == direct.stored_type());
      REQUIRE(from_index.channels_stored_last() == direct.channels_stored_last());
      REQUIRE(from_index.norm_min() == direct.norm_min());
      REQUIRE(from_index.norm_max() == direct.norm_max());
      if (layout.transform == Transform::minmax) REQUIRE(!direct.norm_min().empty());
      for (int64_t i = 0; i < direct.size(); ++i) {
        REQUIRE(from_index.ref(i).file == direct.ref(i).file);
        REQUIRE(from_index.ref(i).index == direct.ref(i).index);
        REQUIRE(from_index.ref(i).origin == direct.ref(i).origin);
      }
      // the index of the copy is the original's: it can be passed on again
      REQUIRE(from_index.index() == index);
      require_same_samples(direct, from_index);
      fs::remove_all(dir);
    }
  }
}

TEST_CASE("index: one that does not fit the files or is not an index is an IOError") {
  const std::string dir = tmpdir("mismatch");
  const auto files = generate_small("packed-cosmoflow", dir);
  const Layout layout = detect_layout(files[0]);
  const std::string index = H5Dataset(files, layout, Driver::posix).index();
  const std::vector<std::string> fewer(files.begin(), files.end() - 1);
  REQUIRE_THROWS_MATCHES(H5Dataset(fewer, layout, index, Driver::posix), IOError,
                         Catch::Message("dataset index: made for 3 files, given 2"));
  REQUIRE_THROWS_AS(H5Dataset(files, layout, "not an index", Driver::posix), IOError);
  REQUIRE_THROWS_AS(H5Dataset(files, layout, index.substr(0, index.size() / 2), Driver::posix), IOError);
  // a layout whose axes do not fit the indexed shapes fails as the constructor from files does
  Layout wrong = layout;
  wrong.axes = "DHW";
  REQUIRE_THROWS_WITH(H5Dataset(files, wrong, index, Driver::posix), Catch::Contains("packed shard holds"));
  REQUIRE_THROWS_WITH(H5Dataset(files, wrong, Driver::posix), Catch::Contains("packed shard holds"));
  fs::remove_all(dir);
}
