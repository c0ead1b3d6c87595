// Checkpoint fault tests (tests/fault/CMakeLists.txt runs each mode as its own test):
//   kill-loop DIR ROUNDS SEED  a child process writes checkpoints back to back (checkpoint.keep
//                              2) and is SIGKILLed at random moments, ROUNDS times (more until
//                              3 kills hit a write in progress): after
//                              every kill the checkpoint loads and verifies, and at most the
//                              one temporary file of the killed write exists (the next write
//                              removes it); a last clean write leaves none;
//   disk-full DIR              on a 1 MiB tmpfs mounted at DIR in a private mount namespace
//                              (needs root; exit 77, skipped, otherwise): a write that does not
//                              fit fails naming the cause ("No space left on device") and
//                              leaves no temporary file; a stale temporary file of a killed
//                              process does not block a write that fits once it is gone; a
//                              failed write keeps the checkpoints already there loadable;
//   flip FILE DATASET|auto     flips one bit inside a dataset's stored data (prints its name);
//   write PATH KEEP COUNT STEP the child of kill-loop.
// Exit 0: passed; 1: failed (with the reason on stderr); 77: skipped.
#include <fcntl.h>
#include <hdf5.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "halo/train/checkpoint.hpp"
#include "halo/util/error.hpp"

using namespace halo;
namespace fs = std::filesystem;

namespace {

int failures = 0;

void expect(bool ok, const std::string& what) {
  std::cerr << (ok ? "ok:   " : "FAIL: ") << what << "\n";
  if (!ok) ++failures;
}

train::CheckpointData sample(int64_t step, int64_t floats) {
  train::CheckpointData d;
  std::vector<float> w(static_cast<size_t>(floats));
  for (size_t i = 0; i < w.size(); ++i) w[i] = float(step) + 1e-3f * float(i % 1000);
  d.tensors["model/conv1/weight"] = Tensor::from_vector<float>(w, {floats});
  d.tensors["optimizer/conv1/weight/momentum"] = Tensor::from_vector<float>({float(step), 1, 2}, {3});
  d.integers["global_step"] = step;
  d.strings["config"] = "fault test";
  return d;
}

std::vector<std::string> temp_files(const std::string& dir) {
  std::vector<std::string> out;
  for (auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".tmp.") != std::string::npos) out.push_back(e.path().string());
  return out;
}

// The step a checkpoint holds, or -1 (with the reason) when it does not load and verify.
int64_t loaded_step(const std::string& path, std::string* why = nullptr) {
  try {
    return train::load_checkpoint(path).integers.at("global_step");
  } catch (const std::exception& e) {
    if (why) *why = e.what();
    return -1;
  }
}

int write_mode(const std::string& path, int keep, int count, int64_t step) {
  for (int i = 0; i < count; ++i) train::save_checkpoint(path, sample(step + i, 1 << 19), keep);
  return 0;
}

int kill_loop(const std::string& dir, int rounds, unsigned seed) {
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string path = dir + "/ckpt.h5";
  const int keep = 2;
  train::save_checkpoint(path, sample(0, 1 << 19), keep);
  std::mt19937 rng(seed);
  // The writer needs ~0.1 s to start, then writes every few tens of ms.
  std::uniform_int_distribution<int> delay_ms(80, 450);
  // Kills that hit a write in progress (a temporary file exists) are the point; a few more
  // rounds are run if chance gave fewer than 3 of them, so the test never proves nothing.
  int mid_write = 0, r = 0;
  for (; (r < rounds || mid_write < 3) && r < 4 * rounds; ++r) {
    const std::string start = std::to_string(100000 * (r + 1));
    pid_t child = fork();
    if (child == 0) {
      // A fresh process, not a fork of this one: the kill must hit a real writer.
      execl("/proc/self/exe", "halo_fault_checkpoint", "write", path.c_str(), "2", "1000000", start.c_str(),
            static_cast<char*>(nullptr));
      _exit(127);
    }
    const int ms = delay_ms(rng);
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    kill(child, SIGKILL);
    int status = 0;
    waitpid(child, &status, 0);
    if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) {
      expect(false, "round " + std::to_string(r) + ": the writer ended by itself (status " + std::to_string(status) +
                        ") instead of being killed");
      continue;
    }
    const auto temps = temp_files(dir);
    // Hit a write in progress: the killed child's own temporary file is there.
    mid_write += std::find(temps.begin(), temps.end(), path + ".tmp." + std::to_string(child)) != temps.end();
    std::string why;
    const int64_t step = loaded_step(path, &why);
    expect(step >= 0, "round " + std::to_string(r) + " (killed after " + std::to_string(ms) +
                          " ms): the checkpoint loads and verifies" + (why.empty() ? "" : ": " + why) +
                          " (step " + std::to_string(step) + ")");
    expect(temps.size() <= 1, "round " + std::to_string(r) + ": at most the killed write's temporary file is left (" +
                                  std::to_string(temps.size()) + " found)");
    for (const auto& k : train::list_checkpoints(path)) {
      std::string kwhy;
      if (loaded_step(k, &kwhy) < 0) expect(false, "round " + std::to_string(r) + ": kept checkpoint loads: " + kwhy);
    }
    expect(train::list_checkpoints(path).size() <= size_t(keep) + 1,
           "round " + std::to_string(r) + ": no more than keep (+1 mid-rotation) checkpoints pile up");
  }
  expect(mid_write >= 3, std::to_string(mid_write) + " of " + std::to_string(r) + " kills hit a write in progress");
  train::save_checkpoint(path, sample(99999999, 1 << 10), keep);
  expect(temp_files(dir).empty(), "a clean write afterwards leaves no temporary file");
  expect(train::list_checkpoints(path).size() == size_t(keep), "and keeps exactly keep checkpoints");
  expect(loaded_step(path) == 99999999, "and loads");
  fs::remove_all(dir);
  return failures ? 1 : 0;
}

std::string save_error(const std::string& path, int64_t step, int64_t floats, int keep) {
  try {
    train::save_checkpoint(path, sample(step, floats), keep);
  } catch (const IOError& e) {
    return e.what();
  }
  return "";
}

int disk_full(const std::string& dir) {
  auto skip = [](const std::string& why) {
    std::cout << "SKIPPED: disk-full needs to mount a 1 MiB tmpfs (root, CAP_SYS_ADMIN): " << why << std::endl;
    return 77;
  };
  if (geteuid() != 0) return skip("not root");
  // A private mount namespace: the tmpfs is visible to this process only and goes with it,
  // however the test ends.
  if (unshare(CLONE_NEWNS) != 0) return skip(std::string("unshare: ") + std::strerror(errno));
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    return skip(std::string("mount --make-rprivate /: ") + std::strerror(errno));
  fs::create_directories(dir);
  if (mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=1m") != 0)
    return skip(std::string("mount -t tmpfs: ") + std::strerror(errno));
  const std::string path = dir + "/ckpt.h5";

  // 1. Does not fit: the cause is named and nothing is left behind.
  std::string err = save_error(path, 1, 1 << 19, 1);  // 2 MiB
  std::cerr << "error: " << err << "\n";
  expect(err.find("No space left on device") != std::string::npos, "a write that does not fit names the cause");
  expect(err.find(path) != std::string::npos, "and the file");
  expect(temp_files(dir).empty(), "and leaves no temporary file");

  // 2. A killed process's temporary file (700 KiB) would leave too little room for a 400 KiB
  //    checkpoint; the write removes it first.
  pid_t child = fork();
  if (child == 0) _exit(0);
  waitpid(child, nullptr, 0);
  const std::string stale = path + ".tmp." + std::to_string(child);
  std::ofstream(stale) << std::string(700 << 10, 'x');
  err = save_error(path, 1, 100 << 10, 2);
  expect(err.empty(), "a stale temporary file does not block the next write" + (err.empty() ? "" : ": " + err));
  expect(!fs::exists(stale), "the stale temporary file is gone");
  expect(loaded_step(path) == 1, "the checkpoint loads");

  // 3. checkpoint.keep 2: the second fits beside the first, the third does not; the failed
  //    write leaves both earlier ones as they were.
  err = save_error(path, 2, 100 << 10, 2);
  expect(err.empty(), "a second checkpoint fits" + (err.empty() ? "" : ": " + err));
  err = save_error(path, 3, 100 << 10, 2);
  expect(err.find("No space left on device") != std::string::npos, "a third does not, and says why: " + err);
  expect(temp_files(dir).empty(), "and leaves no temporary file");
  expect(loaded_step(path) == 2, "the newest checkpoint is intact");
  expect(loaded_step(train::kept_checkpoint_name(path, 1)) == 1, "the kept older one is intact");
  return failures ? 1 : 0;
}

int flip(const std::string& file, std::string dataset) {
  hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) return std::cerr << "cannot open " << file << "\n", 1;
  if (dataset == "auto") {
    // The first dataset under model/ with some data.
    struct Find {
      std::string name;
    } found;
    H5Ovisit(
        f, H5_INDEX_NAME, H5_ITER_INC,
        [](hid_t, const char* name, const H5O_info_t* info, void* op) -> herr_t {
          auto* fd = static_cast<Find*>(op);
          if (info->type == H5O_TYPE_DATASET && std::string(name).rfind("model/", 0) == 0) {
            fd->name = name;
            return 1;
          }
          return 0;
        },
        &found);
    dataset = found.name;
  }
  hid_t ds = H5Dopen2(f, dataset.c_str(), H5P_DEFAULT);
  haddr_t off = ds >= 0 ? H5Dget_offset(ds) : HADDR_UNDEF;
  if (ds >= 0) H5Dclose(ds);
  H5Fclose(f);
  if (off == HADDR_UNDEF) return std::cerr << "no stored data for '" << dataset << "' in " << file << "\n", 1;
  std::fstream io(file, std::ios::in | std::ios::out | std::ios::binary);
  io.seekg(std::streamoff(off + 5));
  char c = 0;
  io.get(c);
  io.seekp(std::streamoff(off + 5));
  io.put(char(c ^ 0x04));
  std::cout << dataset << std::endl;
  return io.good() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> a(argv + 1, argv + argc);
  try {
    if (a.size() == 5 && a[0] == "write") return write_mode(a[1], std::stoi(a[2]), std::stoi(a[3]), std::stoll(a[4]));
    if (a.size() == 4 && a[0] == "kill-loop") return kill_loop(a[1], std::stoi(a[2]), unsigned(std::stoul(a[3])));
    if (a.size() == 2 && a[0] == "disk-full") return disk_full(a[1]);
    if (a.size() == 3 && a[0] == "flip") return flip(a[1], a[2]);
  } catch (const std::exception& e) {
    std::cerr << "FAIL: " << e.what() << "\n";
    return 1;
  }
  std::cerr << "usage: halo_fault_checkpoint kill-loop DIR ROUNDS SEED | disk-full DIR | flip FILE DATASET|auto\n";
  return 2;
}
