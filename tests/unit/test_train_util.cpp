#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "gradcheck.hpp"
#include "halo/train/checkpoint.hpp"
#include "halo/train/metrics_log.hpp"
#include "halo/train/progress.hpp"
#include "halo/util/config.hpp"

using namespace halo;

TEST_CASE("config: file values, overrides, typed getters, unused keys") {
  Config c = Config::parse("train:\n  epochs: 4\n  lr: 0.001\nmodel:\n  filters: [32, 64]\nname: demo\n");
  c.set("train.lr=0.01");
  c.set("data.path=/scratch/cosmo");
  CHECK(c.get_int("train.epochs", 0) == 4);
  CHECK(c.get_double("train.lr", 0) == 0.01);
  CHECK(c.get_ints("model.filters", {}) == std::vector<int64_t>{32, 64});
  CHECK(c.get_string("data.path", "") == "/scratch/cosmo");
  CHECK(c.get_bool("train.verbose", true));
  auto unused = c.unused_keys();
  REQUIRE(unused.size() == 1);
  CHECK(unused[0] == "name");
  CHECK_THROWS_AS(c.get_int("name", 0), ConfigError);
  CHECK_THROWS_AS(c.set("novalue"), ConfigError);
  CHECK_THROWS_AS(Config::load_file("/nonexistent/x.yaml"), ConfigError);
  CHECK_THROWS_WITH(c.require_string("data.missing"), Catch::Contains("data.missing"));
}

TEST_CASE("config: a key given with no value is the empty string, not the default") {
  Config c = Config::parse("data:\n  validation:\n  train: /scratch/train\n");
  c.set("checkpoint.path=");
  CHECK(c.get_string("data.validation", "data/validation") == "");
  CHECK(c.get_string("checkpoint.path", "runs/checkpoint.h5") == "");
  CHECK(c.get_string("data.train", "") == "/scratch/train");
  CHECK(c.get_string("data.format", "auto") == "auto");  // absent: the default
  CHECK(c.get_int("checkpoint.every", 3) == 3);          // numbers keep their defaults
}

TEST_CASE("checkpoint: tensors and scalars round-trip; paths are HDF5 paths") {
  const std::string path = "test_ckpt_roundtrip.h5";
  train::CheckpointData d;
  d.tensors["model/conv1/weight"] = testing::random_tensor({2, 3, 3}, 3, DType::f32);
  d.tensors["model/fc/bias"] = testing::random_tensor({5}, 4, DType::f64);
  d.tensors["rng/state"] = Tensor::from_vector<int64_t>({1, 2, 3}, {3});
  d.tensors["half"] = testing::random_tensor({4}, 5, DType::f32).to(DType::bf16);
  d.integers["epoch"] = 7;
  d.reals["lr"] = 0.125;
  d.strings["model"] = "cosmoflow";
  train::save_checkpoint(path, d);
  auto r = train::load_checkpoint(path);
  REQUIRE(r.tensors.size() == 4);
  CHECK(r.tensors["model/conv1/weight"].to_vector<float>() == d.tensors["model/conv1/weight"].to_vector<float>());
  CHECK(r.tensors["model/fc/bias"].dtype() == DType::f64);
  CHECK(r.tensors["model/fc/bias"].to_vector<double>() == d.tensors["model/fc/bias"].to_vector<double>());
  CHECK(r.tensors["rng/state"].to_vector<int64_t>() == std::vector<int64_t>{1, 2, 3});
  CHECK(r.tensors["half"].dtype() == DType::bf16);
  CHECK(r.tensors["half"].to_vector<float>() == d.tensors["half"].to_vector<float>());
  CHECK(r.integers["epoch"] == 7);
  CHECK(r.reals["lr"] == 0.125);
  CHECK(r.strings["model"] == "cosmoflow");
  std::remove(path.c_str());
  CHECK_THROWS_AS(train::load_checkpoint("does_not_exist.h5"), IOError);
  CHECK_THROWS_AS(train::save_checkpoint("/nonexistent_dir/x.h5", d), IOError);
}

TEST_CASE("metrics log writes one JSON object per line") {
  const std::string path = "test_metrics.jsonl";
  {
    train::MetricsLog log(path, true, false);
    log.write({{"epoch", int64_t(1)}, {"val_mae", 0.25}, {"phase", std::string("train")}});
    log.write({{"epoch", int64_t(2)}, {"val_mae", 0.125}});
  }
  std::ifstream in(path);
  std::string line;
  std::vector<nlohmann::json> rows;
  while (std::getline(in, line)) rows.push_back(nlohmann::json::parse(line));
  REQUIRE(rows.size() == 2);
  CHECK(rows[0]["epoch"] == 1);
  CHECK(rows[0]["phase"] == "train");
  CHECK(rows[1]["val_mae"] == 0.125);
  std::remove(path.c_str());
}

TEST_CASE("progress line: plain output when not a terminal") {
  std::FILE* f = std::tmpfile();
  train::ProgressLine p(true, f, 1e9);
  CHECK_FALSE(p.is_terminal());
  train::ProgressState s{1, 3, 1, 4, 0.5, 12.5, 3.0, 125};
  p.update(s);  // first update prints
  s.step = 2;
  p.update(s);  // within the interval: silent
  s.step = 4;
  p.update(s);  // last step of the epoch always prints
  std::rewind(f);
  char buf[512];
  int lines = 0;
  std::string first;
  while (std::fgets(buf, sizeof buf, f)) {
    if (lines == 0) first = buf;
    ++lines;
  }
  std::fclose(f);
  CHECK(lines == 2);
  CHECK(first.find("epoch 1/3") != std::string::npos);
  CHECK(first.find("step 1/4") != std::string::npos);
  CHECK(first.find("12.5 samples/s") != std::string::npos);
  CHECK(first.find("ETA 2m05s") != std::string::npos);
}
