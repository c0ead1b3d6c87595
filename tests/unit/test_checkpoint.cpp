// Checkpoints you can trust: per-dataset checksums checked on load, checkpoints written
// before checksums still loading, several kept with --resume falling back past a corrupt
// one, no temporary file left by a failed write, stale ones removed by the next write, and
// the OS's reason in the error. (Kills in the middle of writes and a full disk: tests/fault.)
#include <hdf5.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <mutex>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "gradcheck.hpp"
#include "data/h5.hpp"
#include "halo/train/checkpoint.hpp"

using namespace halo;
namespace fs = std::filesystem;

namespace {

std::string fresh_dir(const std::string& name) {
  fs::path d = fs::current_path() / ("test_checkpoint_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

train::CheckpointData sample(int64_t step) {
  train::CheckpointData d;
  d.tensors["model/conv1/weight"] = testing::random_tensor({4, 3, 3}, 3, DType::f32);
  d.tensors["half"] = testing::random_tensor({4}, 5, DType::f32).to(DType::bf16);
  d.integers["global_step"] = step;
  d.reals["lr"] = 0.125;
  d.strings["config"] = "model: cosmoflow";
  return d;
}

// Flips one bit of byte `at` of a dataset's stored data, as a bad disk or transfer would.
void flip_byte(const std::string& file, const std::string& dataset, size_t at) {
  hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  REQUIRE(f >= 0);
  hid_t ds = H5Dopen2(f, dataset.c_str(), H5P_DEFAULT);
  REQUIRE(ds >= 0);
  haddr_t off = H5Dget_offset(ds);
  H5Dclose(ds);
  H5Fclose(f);
  REQUIRE(off != HADDR_UNDEF);
  std::fstream io(file, std::ios::in | std::ios::out | std::ios::binary);
  io.seekg(std::streamoff(off + at));
  char c = 0;
  io.get(c);
  io.seekp(std::streamoff(off + at));
  io.put(char(c ^ 0x10));
}

size_t temp_files(const std::string& dir) {
  size_t n = 0;
  for (auto& e : fs::directory_iterator(dir)) n += e.path().filename().string().find(".tmp.") != std::string::npos;
  return n;
}

}  // namespace

TEST_CASE("checkpoint checksum is XXH64 (reference values of xxHash)") {
  CHECK(train::checksum64("", 0) == 0xEF46DB3751D8E999ULL);
  CHECK(train::checksum64("abc", 3) == 0x44BC2CF5AD770999ULL);
  const std::string s = "Nobody inspects the spammish repetition";  // 39 bytes: every code path
  CHECK(train::checksum64(s.data(), s.size()) == 0xFBCEA83C8A378BF1ULL);
}

TEST_CASE("checkpoint: a flipped byte in a dataset's data fails the load, naming the file and the dataset") {
  const std::string dir = fresh_dir("corrupt");
  const std::string path = dir + "/ckpt.h5";
  train::save_checkpoint(path, sample(7));
  REQUIRE(train::load_checkpoint(path).tensors.at("model/conv1/weight").numel() == 36);
  flip_byte(path, "model/conv1/weight", 17);
  CHECK_THROWS_AS(train::load_checkpoint(path), IOError);
  CHECK_THROWS_WITH(train::load_checkpoint(path), Catch::Contains("checkpoint '" + path + "' is corrupt") &&
                                                      Catch::Contains("dataset 'model/conv1/weight'") &&
                                                      Catch::Contains("checksum"));
  // Scalars under meta/ are covered too.
  train::save_checkpoint(path, sample(7));
  flip_byte(path, "meta/global_step", 0);
  CHECK_THROWS_WITH(train::load_checkpoint(path), Catch::Contains("dataset 'meta/global_step'"));
  fs::remove_all(dir);
}

TEST_CASE("checkpoint: a file written before checksums existed loads unchecked") {
  const std::string dir = fresh_dir("legacy");
  const std::string path = dir + "/old.h5";
  // What save_checkpoint wrote before: plain datasets, no halo_xxh64 attribute.
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  hsize_t n = 3;
  float w[3] = {1, 2, 3};
  hid_t space = H5Screate_simple(1, &n, nullptr);
  hid_t ds = H5Dcreate2(f, "model/w", H5T_NATIVE_FLOAT, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, w);
  H5Dclose(ds);
  H5Sclose(space);
  int64_t step = 5;
  space = H5Screate(H5S_SCALAR);
  ds = H5Dcreate2(f, "meta/global_step", H5T_NATIVE_INT64, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &step);
  H5Dclose(ds);
  H5Sclose(space);
  H5Pclose(lcpl);
  H5Fclose(f);
  auto d = train::load_checkpoint(path);
  CHECK(d.tensors.at("model/w").to_vector<float>() == std::vector<float>{1, 2, 3});
  CHECK(d.integers.at("global_step") == 5);
  fs::remove_all(dir);
}

TEST_CASE("checkpoint.keep: the path is the newest, older ones are named by step and pruned") {
  const std::string dir = fresh_dir("keep");
  const std::string path = dir + "/ckpt.h5";
  CHECK(train::kept_checkpoint_name(path, 120) == dir + "/ckpt.120.h5");
  CHECK(train::kept_checkpoint_name("ckpt", 3) == "ckpt.3");
  for (int64_t step : {10, 20, 30, 40}) train::save_checkpoint(path, sample(step), 3);
  CHECK(train::list_checkpoints(path) == std::vector<std::string>{path, dir + "/ckpt.30.h5", dir + "/ckpt.20.h5"});
  CHECK(train::load_checkpoint(path).integers.at("global_step") == 40);
  CHECK(train::load_checkpoint(dir + "/ckpt.30.h5").integers.at("global_step") == 30);
  CHECK_FALSE(fs::exists(dir + "/ckpt.10.h5"));

  // The newest is corrupt: the next older one loads instead (with a warning).
  flip_byte(path, "model/conv1/weight", 3);
  size_t chosen = 99;
  auto d = train::load_newest_valid_checkpoint(train::list_checkpoints(path), &chosen);
  CHECK(chosen == 1);
  CHECK(d.integers.at("global_step") == 30);
  // None loads: the error lists every file.
  flip_byte(dir + "/ckpt.30.h5", "model/conv1/weight", 3);
  flip_byte(dir + "/ckpt.20.h5", "half", 1);
  CHECK_THROWS_WITH(train::load_newest_valid_checkpoint(train::list_checkpoints(path), &chosen),
                    Catch::Contains("no usable checkpoint among 3") && Catch::Contains("ckpt.20.h5") &&
                        Catch::Contains("dataset 'half'"));

  // Restarted from step 25: the later ones belong to the abandoned run and go.
  for (int64_t step : {10, 20, 30, 40}) train::save_checkpoint(path, sample(step), 3);
  train::save_checkpoint(path, sample(25), 3);
  CHECK(train::list_checkpoints(path) == std::vector<std::string>{path, dir + "/ckpt.20.h5"});
  // keep = 1 (the default) keeps replacing the one file.
  const std::string single = dir + "/single.h5";
  for (int64_t step : {1, 2, 3}) train::save_checkpoint(single, sample(step));
  CHECK(train::list_checkpoints(single) == std::vector<std::string>{single});
  CHECK_THROWS_WITH(train::save_checkpoint(path, train::CheckpointData{}, 2), Catch::Contains("global_step"));
  fs::remove_all(dir);
}

TEST_CASE("checkpoint: a failed write leaves no temporary file and says why; stale ones go at the next write") {
  const std::string dir = fresh_dir("temps");
  const std::string path = dir + "/ckpt.h5";
  // Leftovers of a killed process (its pid no longer runs), of this process, and the file
  // of a write in progress elsewhere (a live pid, just written), which must stay.
  pid_t child = fork();
  if (child == 0) _exit(0);
  waitpid(child, nullptr, 0);
  const std::string dead = path + ".tmp." + std::to_string(child);
  const std::string own = path + ".tmp." + std::to_string(getpid());
  const std::string live = path + ".tmp." + std::to_string(getppid());
  for (const auto& f : {dead, own, live}) std::ofstream(f) << std::string(1000, 'x');
  train::save_checkpoint(path, sample(1));
  CHECK_FALSE(fs::exists(dead));
  CHECK_FALSE(fs::exists(own));
  CHECK(fs::exists(live));
  fs::remove(live);
  CHECK(temp_files(dir) == 0);

  // The rename fails (a directory is in the way): the error gives the OS's reason and the
  // temporary file is gone.
  fs::create_directories(dir + "/blocked.h5/x");
  CHECK_THROWS_WITH(train::save_checkpoint(dir + "/blocked.h5", sample(1)),
                    Catch::Contains("cannot rename checkpoint") && Catch::Contains("Is a directory"));
  CHECK(temp_files(dir) == 0);
  // A missing directory: the OS's reason, not a guess.
  CHECK_THROWS_WITH(train::save_checkpoint(dir + "/missing/ckpt.h5", sample(1)),
                    Catch::Contains("No such file or directory"));
  CHECK_THROWS_WITH(train::load_checkpoint(dir + "/missing/ckpt.h5"), Catch::Contains("No such file or directory"));
  fs::remove_all(dir);
}

// Debian's parallel HDF5 is not thread-safe, and the loaders read in background threads while
// the trainer writes a checkpoint (a mid-epoch or timed one): a checkpoint write that did not
// take the loaders' HDF5 lock crashed inside HDF5 now and then (H5Fflush, under load). Here
// the lock is held by another thread: the write must wait for it, then complete.
TEST_CASE("checkpoint: writing and reading wait for the HDF5 lock the loaders' readers hold") {
  const std::string path = "test_ckpt_hdf5_lock.h5";
  train::CheckpointData d;
  d.tensors["model/w"] = testing::random_tensor({64}, 1, DType::f32);
  d.integers["global_step"] = 1;
  std::promise<void> locked;
  std::promise<void> release;
  std::thread reader([&] {
    std::lock_guard<std::recursive_mutex> lock(data::hdf5_mutex());  // a loader thread mid-read
    locked.set_value();
    release.get_future().wait();
  });
  locked.get_future().wait();
  auto write = std::async(std::launch::async, [&] { train::save_checkpoint(path, d); });
  CHECK(write.wait_for(std::chrono::milliseconds(300)) == std::future_status::timeout);
  release.set_value();
  reader.join();
  REQUIRE(write.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
  write.get();
  CHECK(train::load_checkpoint(path).tensors.at("model/w").to_vector<float>() ==
        d.tensors["model/w"].to_vector<float>());
  std::remove(path.c_str());
}

TEST_CASE("checkpoint: encode/decode (the resume broadcast) returns every entry bit for bit, and refuses damage") {
  using train::CheckpointData;
  using train::decode_checkpoint;
  using train::encode_checkpoint;
  CheckpointData d;
  d.tensors["model/conv/weight"] = Tensor::empty({2, 3, 3}, DType::f32);
  for (int64_t i = 0; i < 18; ++i) d.tensors["model/conv/weight"].data<float>()[i] = float(i) * 0.25f - 1.0f;
  d.tensors["optimizer/step"] = Tensor::empty({1}, DType::i64);
  d.tensors["optimizer/step"].data<int64_t>()[0] = -7;
  d.tensors["bf16/x"] = Tensor::empty({3}, DType::bf16);
  for (int64_t i = 0; i < 3; ++i) d.tensors["bf16/x"].data<bf16>()[i] = bf16(float(i) + 0.5f);
  d.tensors["empty"] = Tensor::empty({0, 4}, DType::f64);
  d.integers["meta/global_step"] = 123456789012;
  d.reals["meta/loss"] = 0.1;
  d.strings["meta/model"] = std::string("cosmoflow\0with a nul", 20);
  const std::string bytes = encode_checkpoint(d);
  const CheckpointData back = decode_checkpoint(bytes);
  REQUIRE(back.tensors.size() == d.tensors.size());
  for (const auto& [name, t] : d.tensors) {
    INFO(name);
    const Tensor& u = back.tensors.at(name);
    CHECK(u.shape() == t.shape());
    CHECK(u.dtype() == t.dtype());
    CHECK(std::memcmp(u.raw_data(), t.raw_data(), t.nbytes()) == 0);
  }
  CHECK(back.integers == d.integers);
  CHECK(back.reals.at("meta/loss") == 0.1);
  CHECK(back.strings == d.strings);
  CHECK(decode_checkpoint(encode_checkpoint(CheckpointData{})).tensors.empty());
  // A truncated or padded broadcast is an error, not a partial checkpoint.
  CHECK_THROWS_WITH(decode_checkpoint(bytes.substr(0, bytes.size() - 3)), Catch::Contains("truncated"));
  CHECK_THROWS_WITH(decode_checkpoint(bytes + "x"), Catch::Contains("bytes left after the last entry"));
}
