// Regression tests for the input-handling bugs the fuzz targets (tests/fuzz/) found: each
// input that crashed is also in tests/fuzz/corpus/, replayed by the fuzz build's ctest; these
// keep the fixes covered in the normal build, which does not need clang.
#include <catch2/catch.hpp>

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

#include "halo/data/dataset.hpp"
#include "halo/data/format.hpp"
#include "data/h5.hpp"
#include "halo/train/checkpoint.hpp"
#include "halo/util/config.hpp"
#include "halo/util/error.hpp"

using namespace halo;

TEST_CASE("config: malformed structure is a ConfigError (found by fuzz_config)") {
  // the top level must be a mapping: a scalar or list root used to make set() throw yaml-cpp's BadSubscript
  CHECK_THROWS_AS(Config::parse("5"), ConfigError);
  CHECK_THROWS_AS(Config::parse("- a\n- b\n"), ConfigError);
  // keys that are lists or mappings used to escape unused_keys() as YAML::TypedBadConversion
  CHECK_THROWS_WITH(Config::parse("? [a, b]\n: 1\n"), Catch::Contains("keys must be plain names"));
  Config c = Config::parse("a: 1\n");
  CHECK_THROWS_AS(c.set("b={[1]: 2}"), ConfigError);
  // nesting beyond 64 levels, and aliases that expand without bound ("billion laughs")
  std::string deep = "a: " + std::string(80, '[') + "1" + std::string(80, ']') + "\n";
  CHECK_THROWS_WITH(Config::parse(deep), Catch::Contains("nested deeper"));
  std::string laughs = "l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 9; ++i) {
    std::string prev = "*l" + std::to_string(i - 1);
    laughs += "l" + std::to_string(i) + ": &l" + std::to_string(i) + " [";
    for (int k = 0; k < 10; ++k) laughs += prev + (k < 9 ? ", " : "");
    laughs += "]\n";
  }
  CHECK_THROWS_WITH(Config::parse(laughs), Catch::Contains("aliases"));
  CHECK(Config::parse("a: {b: {c: [1, 2]}}\nd: &x [1]\ne: *x\n").get_ints("e", {}) == std::vector<int64_t>{1});
}

namespace {
// A file with `x` (2,2) float32 and `y` (2,) float32, plus what `extra` adds.
template <class F>
std::string write_h5(const std::string& name, F extra) {
  const std::string path = name + ".h5";
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  REQUIRE(f >= 0);
  extra(f);
  H5Fclose(f);
  return path;
}
}  // namespace

TEST_CASE("h5: a string attribute holding several strings is an IOError, not a buffer overrun") {
  const std::string path = write_h5("test_robust_attr", [](hid_t f) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, 6);
    hsize_t n = 3;
    hid_t s = H5Screate_simple(1, &n, nullptr);
    hid_t a = H5Acreate2(f, "halo_format", t, s, H5P_DEFAULT, H5P_DEFAULT);
    const char v[18] = "packed\0packed\0pac";
    H5Awrite(a, t, v);
    H5Aclose(a);
    H5Sclose(s);
    H5Tclose(t);
  });
  CHECK_THROWS_AS(data::detect_layout(path), IOError);
  std::remove(path.c_str());
}

TEST_CASE("checkpoint: a meta/ dataset holding an array is an IOError, not a stack overrun") {
  const std::string path = write_h5("test_robust_ckpt", [](hid_t f) {
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hsize_t n = 5;
    hid_t s = H5Screate_simple(1, &n, nullptr);
    hid_t d = H5Dcreate2(f, "meta/epoch", H5T_NATIVE_INT64, s, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    const int64_t v[5] = {1, 2, 3, 4, 5};
    H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    H5Dclose(d);
    H5Sclose(s);
    H5Pclose(lcpl);
  });
  CHECK_THROWS_WITH(train::load_checkpoint(path), Catch::Contains("meta/epoch") && Catch::Contains("expected one"));
  // after the exception crossed the HDF5 iteration, HDF5 still works: a good checkpoint loads
  train::CheckpointData d;
  d.integers["epoch"] = 2;
  train::save_checkpoint(path, d);
  CHECK(train::load_checkpoint(path).integers.at("epoch") == 2);
  std::remove(path.c_str());
}

TEST_CASE("dataset: a packed file whose data is a scalar is an IOError, not an out-of-bounds read") {
  // first shard: data (3,) label (3,) with layout axes "" (one value per sample); second:
  // scalar data used to pass the per-sample shape check and read data_dims[0] of an empty shape
  auto shard = [](const std::string& name, bool scalar) {
    return write_h5(name, [scalar](hid_t f) {
      hsize_t n = 3;
      const float v[3] = {1, 2, 3};
      hid_t s = scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, nullptr);
      hid_t d = H5Dcreate2(f, "data", H5T_NATIVE_FLOAT, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
      H5Dclose(d);
      H5Sclose(s);
      s = H5Screate_simple(1, &n, nullptr);
      d = H5Dcreate2(f, "label", H5T_NATIVE_FLOAT, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
      H5Dclose(d);
      H5Sclose(s);
    });
  };
  const std::string a = shard("test_robust_packed_a", false), b = shard("test_robust_packed_b", true);
  data::Layout l;
  l.packed = true;
  l.data = "data";
  l.label = "label";
  l.axes = "";
  CHECK(data::H5Dataset({a}, l, data::Driver::posix).size() == 3);
  CHECK_THROWS_AS(data::H5Dataset({a, b}, l, data::Driver::posix), IOError);
  std::remove(a.c_str());
  std::remove(b.c_str());
}
