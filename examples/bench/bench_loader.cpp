// halo-bench-loader: the DataLoader's delivery rate against a plain sequential read of the
// same bytes (HDF5 H5Dread of every sample file, one after the other, no transform), warm
// page cache, one rank. The loader also transforms (log1p, axis order) and batches.
//
//   halo-bench-loader [--format cosmoflow-mlperf] [--samples 48] [--size 64] [--batch 4]
//                     [--threads 2] [--prefetch 4] [--driver posix|mpio] [--dir DIR]
// Last line: loader_pct=<loader rate / plain rate * 100>.
#include <mpi.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "halo/data/loader.hpp"
#include "halo/data/synthetic.hpp"
#include "halo/util/timer.hpp"

using namespace halo;
using namespace halo::data;

static void run(int argc, char** argv) {
  std::string format = "cosmoflow-mlperf", driver = "posix", dir;
  int64_t samples = 48, size = 64, batch = 4;
  int threads = 2, prefetch = 4, reps = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--format") format = v;
    else if (k == "--samples") samples = std::stoll(v);
    else if (k == "--size") size = std::stoll(v);
    else if (k == "--batch") batch = std::stoll(v);
    else if (k == "--threads") threads = std::stoi(v);
    else if (k == "--prefetch") prefetch = std::stoi(v);
    else if (k == "--driver") driver = v;
    else if (k == "--dir") dir = v;
    else if (k == "--reps") reps = std::stoi(v);
  }
  bool own_dir = dir.empty();
  if (own_dir) dir = (std::filesystem::temp_directory_path() / ("halo-bench-loader-" + format)).string();
  if (!std::filesystem::exists(dir)) {
    GenerateOptions g;
    g.format = format;
    g.out_dir = dir;
    g.samples = samples;
    g.size = size;
    g.height = 192;
    g.width = 288;
    generate(g);
  }
  auto files = list_files(dir);
  auto ds = std::make_shared<H5Dataset>(files, detect_layout(files[0]), driver == "mpio" ? Driver::mpio : Driver::posix);
  const double bytes = double(ds->size()) * double(ds->stored_bytes() + ds->label_bytes());
  std::printf("format %s: %lld samples of %s (%s stored %s), %.1f MB\n", ds->layout().format.c_str(),
              (long long)ds->size(), to_string(ds->sample_shape()).c_str(), name(ds->stored_type()),
              to_string(ds->stored_shape()).c_str(), bytes / 1e6);

  // plain sequential read: each sample's stored bytes and label, in file order, one thread,
  // into consecutive rows of one batch-sized buffer (what a loop without a loader would do)
  std::vector<unsigned char> raw(ds->stored_bytes() * size_t(batch)), lab(ds->label_bytes() * size_t(batch));
  double plain = 1e30;
  for (int r = 0; r < reps + 1; ++r) {  // the first pass warms the page cache
    Stopwatch sw;
    for (int64_t i = 0; i < ds->size(); ++i)
      ds->read_raw(i, raw.data() + size_t(i % batch) * ds->stored_bytes(), lab.data() + size_t(i % batch) * ds->label_bytes());
    if (r > 0) plain = std::min(plain, sw.seconds());
  }
  ds->close_files();

  LoaderOptions o;
  o.batch_size = batch;
  o.io_threads = threads;
  o.prefetch = prefetch;
  o.shard.seed = 1;
  DataLoader dl(ds, o);
  double best = 1e30, wait = 0;
  double checksum = 0;
  for (int e = 0; e < reps + 1; ++e) {
    Stopwatch sw;
    dl.start_epoch(e);
    while (const Batch* b = dl.next()) checksum += double(b->x.data<float>()[0]);
    double t = sw.seconds();
    if (e > 0 && t < best) best = t, wait = dl.epoch_stats().wait_seconds;
  }
  double plain_rate = bytes / plain / 1e6, loader_rate = bytes / best / 1e6;
  std::printf("plain sequential read: %.3f s, %.0f MB/s\n", plain, plain_rate);
  std::printf("loader (%d threads, prefetch %d, batch %lld, %s driver): %.3f s, %.0f MB/s, %.0f samples/s, "
              "waited %.3f s (checksum %.3g)\n",
              threads, prefetch, (long long)batch, driver.c_str(), best, loader_rate, double(ds->size()) / best, wait,
              checksum);
  std::printf("loader_pct=%.1f\n", 100.0 * loader_rate / plain_rate);
  if (own_dir) std::filesystem::remove_all(dir);
}

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  run(argc, argv);  // loaders and files are closed before MPI ends
  MPI_Finalize();
  return 0;
}
