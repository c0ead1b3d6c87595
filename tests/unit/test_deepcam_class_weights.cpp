#include <catch2/catch.hpp>

#include <filesystem>
#include <numeric>

#include "halo/data/dataset.hpp"
#include "halo/data/format.hpp"
#include "halo/data/synthetic.hpp"
#include "halo/train/class_weights.hpp"
#include "halo/util/error.hpp"

using namespace halo;

TEST_CASE("DeepCAM class weights reproduce MLPerf's from its published class fractions") {
  // MLPerf HPC DeepCAM: background, tropical cyclone, atmospheric river.
  auto w = train::class_weights_from_counts({0.98627, 0.000458, 0.01327});
  REQUIRE(w.size() == 3);
  CHECK(w[0] == Approx(1.0017).margin(2e-4));
  CHECK(w[1] == Approx(2.6146).margin(2e-4));
  CHECK(w[2] == Approx(1.7164).margin(2e-4));
}

TEST_CASE("Class weights depend only on the ratios of the counts") {
  // Pixel counts of 1000 samples at the fractions above: the same weights.
  const double pixels = 1000.0 * 768 * 1152;
  auto a = train::class_weights_from_counts({0.98627 * pixels, 0.000458 * pixels, 0.01327 * pixels});
  auto b = train::class_weights_from_counts({0.98627, 0.000458, 0.01327});
  for (size_t k = 0; k < 3; ++k) CHECK(a[k] == Approx(b[k]).epsilon(1e-6));
  // Equal classes: every fraction 1/3, weight 3^0.125.
  auto e = train::class_weights_from_counts({5, 5, 5});
  for (double v : e) CHECK(v == Approx(std::pow(3.0, 0.125)));
  // Another power: inverse square root of the fractions.
  auto s = train::class_weights_from_counts({75, 25}, -0.5);
  CHECK(s[0] == Approx(std::sqrt(1 / 0.75)));
  CHECK(s[1] == Approx(2.0));
}

TEST_CASE("A class without pixels is an error naming the class") {
  CHECK_THROWS_AS(train::class_weights_from_counts({10, 0, 3}), ConfigError);
  CHECK_THROWS_WITH(train::class_weights_from_counts({10, 0, 3}), Catch::Contains("class 1"));
  CHECK_THROWS_AS(train::class_weights_from_counts({10, -1, 3}), ConfigError);
}

TEST_CASE("Label pixels are counted per class over the chosen samples") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / "halo_test_class_weights";
  fs::remove_all(dir);
  data::GenerateOptions g;
  g.format = "deepcam";
  g.out_dir = dir.string();
  g.samples = 3;
  g.height = 32;
  g.width = 48;
  g.seed = 5;
  data::generate(g);
  auto files = data::list_files(dir.string());
  data::H5Dataset ds(files, data::layout_by_name("auto", files.front()));
  REQUIRE(ds.size() == 3);

  // The reference: the labels as the dataset delivers them.
  std::vector<float> x(size_t(numel(ds.sample_shape())));
  std::vector<int32_t> y(size_t(numel(ds.label_shape())));
  data::ReadScratch scratch;
  std::vector<double> expect(3, 0.0);
  for (int64_t i : {0, 2}) {
    ds.read(i, x.data(), y.data(), scratch);
    for (int32_t v : y) expect[size_t(v)] += 1;
  }
  auto counts = train::count_label_pixels(ds, {0, 2}, 3);
  CHECK(counts == expect);
  CHECK(std::accumulate(counts.begin(), counts.end(), 0.0) == 2 * 32 * 48);
  // The generated climate has some of every class, mostly background.
  auto all = train::count_label_pixels(ds, {0, 1, 2}, 3);
  CHECK(all[0] > all[1]);
  CHECK(all[0] > all[2]);
  CHECK(all[1] + all[2] > 0);
  fs::remove_all(dir);
}
