// The loader under mpiexec: shards disjoint and complete across real ranks, the epoch
// permutation identical on every rank, reads through HDF5's MPI-IO driver.
#include <catch2/catch.hpp>
#include <mpi.h>

#include <algorithm>
#include <filesystem>
#include <unistd.h>

#include "halo/data/loader.hpp"
#include "halo/data/synthetic.hpp"
#include "mpi_world.hpp"

using namespace halo;
using namespace halo::data;
namespace fs = std::filesystem;

using halo::test::world_rank;
using halo::test::world_size;

namespace {

// Rank 0 writes the files; the directory name is rank 0's pid, shared by broadcast.
std::string shared_dir(const std::string& format, int64_t samples) {
  const std::string dir = halo::test::shared_temp_path("halo-mpi-data-" + format);
  if (world_rank() == 0) {
    GenerateOptions g;
    g.format = format;
    g.out_dir = dir;
    g.samples = samples;
    g.size = 8;
    g.height = 8;
    g.width = 12;
    g.per_shard = 4;
    generate(g);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  return dir;
}

std::vector<int64_t> gather_all(const std::vector<int64_t>& mine) {
  int n = int(mine.size()), P = world_size();
  std::vector<int> counts(static_cast<size_t>(P)), displs(static_cast<size_t>(P), 0);
  MPI_Allgather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, MPI_COMM_WORLD);
  for (int r = 1; r < P; ++r) displs[size_t(r)] = displs[size_t(r - 1)] + counts[size_t(r - 1)];
  std::vector<int64_t> all(size_t(displs.back() + counts.back()));
  MPI_Allgatherv(mine.data(), n, MPI_INT64_T, all.data(), counts.data(), displs.data(), MPI_INT64_T, MPI_COMM_WORLD);
  return all;
}
bool same_on_all_ranks(long v) {
  long lo = 0, hi = 0;
  MPI_Allreduce(&v, &lo, 1, MPI_LONG, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(&v, &hi, 1, MPI_LONG, MPI_MAX, MPI_COMM_WORLD);
  return lo == hi;
}
}  // namespace

TEST_CASE("mpi loader: every real sample exactly once per epoch across ranks, MPI-IO driver") {
  for (const char* format : {"cosmoflow-mlperf", "packed-cosmoflow"}) {
    const int64_t n = 13;
    std::string dir = shared_dir(format, n);
    auto ds = std::make_shared<H5Dataset>(list_files(dir), detect_layout(list_files(dir)[0]), Driver::mpio);
    REQUIRE(ds->size() == n);
    LoaderOptions o;
    o.batch_size = 2;
    o.shard.seed = 42;
    o.prefetch = 2;
    o.io_threads = 2;
    DataLoader dl(ds, o);
    // 13 samples do not divide over 2 or 4 ranks: the epoch is padded, the same length everywhere
    CHECK(same_on_all_ranks(dl.batches_per_epoch()));
    for (int64_t epoch = 0; epoch < 2; ++epoch) {
      dl.start_epoch(epoch);
      std::vector<int64_t> mine;
      long batches = 0, last_size = 0;
      while (const Batch* b = dl.next()) {
        // only the rows before Batch::real are this epoch's own samples
        REQUIRE(b->real <= b->size);
        mine.insert(mine.end(), b->samples.begin(), b->samples.begin() + b->real);
        ++batches;
        last_size = long(b->size);
      }
      CHECK(batches == dl.batches_per_epoch());
      CHECK(same_on_all_ranks(batches));
      CHECK(same_on_all_ranks(last_size));
      CHECK(int64_t(mine.size()) == dl.sampler().real_size());
      auto all = gather_all(mine);
      std::sort(all.begin(), all.end());
      REQUIRE(int64_t(all.size()) == n);
      for (int64_t i = 0; i < n; ++i) REQUIRE(all[size_t(i)] == i);
    }
    // the permutation is the same on every rank: compare with rank 0's
    auto order = dl.sampler().global_order(3);
    auto root = order;
    MPI_Bcast(root.data(), int(root.size()), MPI_INT64_T, 0, MPI_COMM_WORLD);
    CHECK(order == root);
    ds.reset();
    MPI_Barrier(MPI_COMM_WORLD);
    if (world_rank() == 0) fs::remove_all(dir);
  }
}

TEST_CASE("mpi loader: drop_last gives equal shards and equal batch counts on all ranks") {
  std::string dir = shared_dir("cosmoflow-mlperf", 10);
  auto ds = std::make_shared<H5Dataset>(list_files(dir), cosmoflow_mlperf());
  LoaderOptions o;
  o.batch_size = 1;
  o.shard.drop_last = true;
  DataLoader dl(ds, o);
  long batches = dl.batches_per_epoch(), lo = 0, hi = 0;
  MPI_Allreduce(&batches, &lo, 1, MPI_LONG, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(&batches, &hi, 1, MPI_LONG, MPI_MAX, MPI_COMM_WORLD);
  CHECK(lo == hi);
  CHECK(batches == 10 / world_size());
  dl.start_epoch(0);
  std::vector<int64_t> mine;
  while (const Batch* b = dl.next()) mine.push_back(b->samples[0]);
  auto all = gather_all(mine);
  std::sort(all.begin(), all.end());
  CHECK(std::adjacent_find(all.begin(), all.end()) == all.end());
  CHECK(int64_t(all.size()) == (10 / world_size()) * world_size());
  ds.reset();
  MPI_Barrier(MPI_COMM_WORLD);
  if (world_rank() == 0) fs::remove_all(dir);
}

TEST_CASE("mpi loader: drop_last_batch on 33 samples keeps full batches only, the same count on every rank") {
  std::string dir = shared_dir("cosmoflow-mlperf", 33);
  auto ds = std::make_shared<H5Dataset>(list_files(dir), cosmoflow_mlperf());
  for (int64_t b : {1, 3, 5}) {
    LoaderOptions o;
    o.batch_size = b;
    o.drop_last_batch = true;
    o.shard.seed = 4;
    DataLoader dl(ds, o);
    const long P = world_size(), expect = long(33 / (P * b));
    CHECK(dl.batches_per_epoch() == expect);
    dl.start_epoch(1);
    std::vector<int64_t> mine;
    while (const Batch* bt = dl.next()) {
      CHECK(bt->size == b);
      CHECK(bt->real == b);
      mine.insert(mine.end(), bt->samples.begin(), bt->samples.end());
    }
    auto all = gather_all(mine);
    CHECK(long(all.size()) == expect * P * long(b));
    std::sort(all.begin(), all.end());
    CHECK(std::adjacent_find(all.begin(), all.end()) == all.end());
  }
  ds.reset();
  MPI_Barrier(MPI_COMM_WORLD);
  if (world_rank() == 0) fs::remove_all(dir);
}

TEST_CASE("mpi loader: staging on an uneven data set gives every rank the same batches") {
  std::string dir = shared_dir("cosmoflow-mlperf", 7);
  auto ds = std::make_shared<H5Dataset>(list_files(dir), cosmoflow_mlperf());
  LoaderOptions o;
  o.batch_size = 2;
  o.shard.seed = 8;
  o.staging = Staging::memory;
  DataLoader dl(ds, o);
  CHECK(same_on_all_ranks(dl.batches_per_epoch()));
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    dl.start_epoch(epoch);
    std::vector<int64_t> mine;
    long batches = 0;
    while (const Batch* b = dl.next()) {
      mine.insert(mine.end(), b->samples.begin(), b->samples.begin() + b->real);
      ++batches;
    }
    CHECK(same_on_all_ranks(batches));
    auto all = gather_all(mine);
    std::sort(all.begin(), all.end());
    REQUIRE(all.size() == 7);
    for (int64_t i = 0; i < 7; ++i) CHECK(all[size_t(i)] == i);
  }
  ds.reset();
  MPI_Barrier(MPI_COMM_WORLD);
  if (world_rank() == 0) fs::remove_all(dir);
}

TEST_CASE("mpi loader: validation is unshuffled and strided over ranks") {
  std::string dir = shared_dir("deepcam", 6);
  auto ds = std::make_shared<H5Dataset>(list_files(dir), deepcam());
  LoaderOptions o;
  o.batch_size = 4;
  o.shard.shuffle = false;
  DataLoader dl(ds, o);
  dl.start_epoch(0);
  std::vector<int64_t> mine;
  while (const Batch* b = dl.next()) {
    CHECK(b->y.dtype() == DType::i32);
    mine.insert(mine.end(), b->samples.begin(), b->samples.end());
  }
  // 6 samples: on 4 ranks the padding repeats samples 0 and 1 on ranks 2 and 3
  for (size_t k = 0; k < mine.size(); ++k) CHECK(mine[k] == (int64_t(world_rank()) + int64_t(k) * world_size()) % 6);
  ds.reset();
  MPI_Barrier(MPI_COMM_WORLD);
  if (world_rank() == 0) fs::remove_all(dir);
}
