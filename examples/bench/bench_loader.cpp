// halo-bench-loader: the DataLoader's delivery rate against a plain sequential read of the
// same bytes (HDF5 H5Dread of each sample's stored values and label, one sample after the
// other, no transform, one thread), on every rank of the launch, each on its own shard,
// with the page cache cold (the files' pages dropped first) and warm.
//
//   [mpiexec -n 2] halo-bench-loader [--format cosmoflow-mlperf] [--samples 16] [--size 128]
//                  [--batch 4] [--threads 2] [--prefetch 4] [--reps 3] [--driver posix|mpio]
//                  [--dir DIR] [--check 1|0]
//
// Without --dir it generates its files into a temporary directory and removes them after.
// Rates are aggregated over ranks: all bytes over the slowest rank's time. The loader also
// transforms (e.g. log1p of int16 counts into float32) and batches; the plain read does not.
// --check 0 turns off the loader's value checks (NaN/Inf, negative counts; H5Dataset::
// set_check_values), to measure what they cost: run it with 1 and 0 and compare the loader rates.
// Last line: loader_vs_raw_pct=<warm loader rate / warm plain rate * 100>.
#include <fcntl.h>
#include <mpi.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "halo/data/loader.hpp"
#include "halo/data/synthetic.hpp"
#include "halo/dist/root_read.hpp"
#include "halo/util/error.hpp"
#include "halo/util/timer.hpp"
#include "args.hpp"

using namespace halo;
using namespace halo::data;

namespace {

/// Drops the files' pages from the page cache (clean pages need no privilege).
void evict(const std::vector<std::string>& files) {
  for (const auto& f : files) {
    int fd = ::open(f.c_str(), O_RDONLY);
    if (fd < 0) continue;
    ::fdatasync(fd);  // dirty pages (freshly generated files) cannot be dropped
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
}

/// Fraction of the files' pages in the page cache (mincore), to show whether eviction worked.
double cached_fraction(const std::vector<std::string>& files) {
  const long page = ::sysconf(_SC_PAGESIZE);
  double resident = 0, total = 0;
  for (const auto& f : files) {
    int fd = ::open(f.c_str(), O_RDONLY);
    if (fd < 0) continue;
    const off_t len = ::lseek(fd, 0, SEEK_END);
    if (len > 0) {
      void* m = ::mmap(nullptr, size_t(len), PROT_READ, MAP_SHARED, fd, 0);
      if (m != MAP_FAILED) {
        std::vector<unsigned char> v(size_t((len + page - 1) / page));
        if (::mincore(m, size_t(len), v.data()) == 0)
          for (unsigned char c : v) resident += (c & 1), total += 1;
        ::munmap(m, size_t(len));
      }
    }
    ::close(fd);
  }
  return total > 0 ? resident / total : 0.0;
}

double slowest(double seconds) {
  double out = 0;
  MPI_Allreduce(&seconds, &out, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return out;
}

}  // namespace

static void run(int argc, char** argv) {
  int rank = 0, ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  std::string format = "cosmoflow-mlperf", driver = "posix", dir;
  int64_t samples = 16, size = 128, batch = 4;
  int threads = 2, prefetch = 4, reps = 3;
  bool check = true;
  for (int i = 1; i < argc; i += 2) {
    std::string k = argv[i];
    HALO_CHECK_T(ConfigError, i + 1 < argc, "halo-bench-loader: ", k, " needs a value");
    std::string v = argv[i + 1];
    if (k == "--format") format = v;
    else if (k == "--samples") samples = std::stoll(v);
    else if (k == "--size") size = std::stoll(v);
    else if (k == "--batch") batch = std::stoll(v);
    else if (k == "--threads") threads = std::stoi(v);
    else if (k == "--prefetch") prefetch = std::stoi(v);
    else if (k == "--driver") driver = v;
    else if (k == "--dir") dir = v;
    else if (k == "--reps") reps = std::stoi(v);
    else if (k == "--check") check = std::stoi(v) != 0;
    else throw ConfigError("halo-bench-loader: unknown option " + k);
  }
  const bool own_dir = dir.empty();
  if (own_dir) dir = (std::filesystem::temp_directory_path() / ("halo-bench-loader-" + format)).string();
  if (rank == 0 && !std::filesystem::exists(dir)) {
    GenerateOptions g;
    g.format = format;
    g.out_dir = dir;
    g.samples = samples;
    g.size = size;
    g.height = 192;
    g.width = 288;
    generate(g);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  // As the drivers do: rank 0 lists and opens the files, the others build the dataset from its index.
  auto ds = dist::open_dataset_on_root(
      MPI_COMM_WORLD,
      [&] {
        auto files = list_files(dir);
        HALO_CHECK_T(IOError, !files.empty(), "halo-bench-loader: no HDF5 files in ", dir);
        Layout layout = detect_layout(files[0]);
        return std::make_pair(std::move(files), std::move(layout));
      },
      driver == "mpio" ? Driver::mpio : Driver::posix);
  const std::vector<std::string>& files = ds->files();
  ds->set_check_values(check);
  const double sample_bytes = double(ds->stored_bytes() + ds->label_bytes());
  const double bytes = double(ds->size()) * sample_bytes;
  if (rank == 0)
    std::printf("format %s: %lld samples of %s (%s stored %s), %.1f MB, %d rank(s)\n", ds->layout().format.c_str(),
                (long long)ds->size(), to_string(ds->sample_shape()).c_str(), name(ds->stored_type()),
                to_string(ds->stored_shape()).c_str(), bytes / 1e6, ranks);

  // Plain sequential read of this rank's block of samples into consecutive rows of one
  // batch-sized buffer: what a loop without a loader would do.
  const int64_t begin = ds->size() * rank / ranks, end = ds->size() * (rank + 1) / ranks;
  std::vector<unsigned char> raw(ds->stored_bytes() * size_t(batch)), lab(ds->label_bytes() * size_t(batch));
  auto plain_pass = [&] {
    MPI_Barrier(MPI_COMM_WORLD);
    Stopwatch sw;
    for (int64_t i = begin; i < end; ++i)
      ds->read_raw(i, raw.data() + size_t(i % batch) * ds->stored_bytes(),
                   lab.data() + size_t(i % batch) * ds->label_bytes());
    return slowest(sw.seconds());
  };

  LoaderOptions o;
  o.batch_size = batch;
  o.io_threads = threads;
  o.prefetch = prefetch;
  o.shard.seed = 1;
  auto dl = std::make_unique<DataLoader>(ds, o);
  double checksum = 0, wait = 0, local_samples = 0;
  int epoch = 0;
  auto loader_pass = [&] {
    MPI_Barrier(MPI_COMM_WORLD);
    Stopwatch sw;
    dl->start_epoch(epoch++);
    local_samples = 0;
    while (const Batch* b = dl->next()) {
      checksum += double(b->x.data<float>()[0]);
      local_samples += double(b->x.shape()[0]);
    }
    wait = dl->epoch_stats().wait_seconds;
    return slowest(sw.seconds());
  };

  // cold: pages dropped before each pass
  evict(files);
  const double cached_after_evict = cached_fraction(files);
  const double plain_cold = plain_pass();
  ds->close_files();
  evict(files);
  const double loader_cold = loader_pass();
  // warm: a first pass of each fills the cache, then the best of `reps`
  double plain_warm = 1e30, loader_warm = 1e30, warm_wait = 0;
  plain_pass();
  for (int r = 0; r < reps; ++r) plain_warm = std::min(plain_warm, plain_pass());
  ds->close_files();
  loader_pass();
  for (int r = 0; r < reps; ++r) {
    const double t = loader_pass();
    if (t < loader_warm) loader_warm = t, warm_wait = wait;
  }
  double epoch_samples = 0;  // every sample once per epoch over all ranks
  MPI_Allreduce(&local_samples, &epoch_samples, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  const double delivered = epoch_samples * sample_bytes;
  if (rank == 0) {
    auto line = [&](const char* what, double plain, double loader, double loader_bytes) {
      std::printf("%-5s plain sequential read %.3f s, %6.0f MB/s | loader %.3f s, %6.0f MB/s, %6.0f samples/s | %.1f %%\n",
                  what, plain, bytes / plain / 1e6, loader, loader_bytes / loader / 1e6,
                  loader_bytes / sample_bytes / loader, 100.0 * (loader_bytes / loader) / (bytes / plain));
    };
    std::printf("loader: %d I/O threads per rank, prefetch %d, batch %lld per rank, %s driver, value checks %s\n",
                threads, prefetch, (long long)batch, driver.c_str(), check ? "on" : "off");
    line("cold", plain_cold, loader_cold, delivered);
    std::printf("      (%.0f %% of the files' pages were still cached after eviction%s)\n", 100 * cached_after_evict,
                cached_after_evict > 0.5 ? ": this file system keeps them, so 'cold' is not cold here" : "");
    line("warm", plain_warm, loader_warm, delivered);
    std::printf("rank 0 waited %.3f s for data in the best warm epoch (checksum %.3g)\n", warm_wait, checksum);
    std::printf("loader_vs_raw_pct=%.1f\n", 100.0 * (delivered / loader_warm) / (bytes / plain_warm));
  }
  dl.reset();  // stops the reader threads
  ds->close_files();
  MPI_Barrier(MPI_COMM_WORLD);
  if (own_dir && rank == 0) std::filesystem::remove_all(dir);
}

int main(int argc, char** argv) {
  if (halo::bench::help(argc, argv, "usage: [mpiexec -n N] halo-bench-loader [--format cosmoflow-mlperf] [--samples 16] [--size 128] [--batch 4]\n                         [--threads 2] [--prefetch 4] [--reps 3] [--driver posix|mpio] [--dir DIR]\n                         [--check 1|0]\n  The loader vs a plain sequential read of the same bytes, cold and warm page cache.\n  Last line: loader_vs_raw_pct=<x>.\n")) return 0;
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  int rc = 0;
  try {
    run(argc, argv);  // loaders and files are closed before MPI ends
  } catch (const std::exception& e) {
    std::fprintf(stderr, "halo-bench-loader: %s\n", e.what());
    rc = 1;
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Finalize();
  return rc;
}
