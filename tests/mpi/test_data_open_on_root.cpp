// Start-up file access under mpiexec: the driver's data set is opened by rank 0 alone (the
// listing, the layout probe, the shapes, every packed shard's length, the minmax
// statistics); the other ranks build it from rank 0's index without opening a file, and
// then read the same samples as a dataset opened directly.
#include <catch2/catch.hpp>
#include <mpi.h>

#include <cstring>
#include <filesystem>
#include <unistd.h>

#include <hdf5.h>  // for data/h5.hpp

#include "data/h5.hpp"  // open_file_count (private)
#include "halo/data/loader.hpp"
#include "halo/data/synthetic.hpp"
#include "halo/dist/root_read.hpp"
#include "halo/train/driver.hpp"
#include "mpi_world.hpp"

using namespace halo;
using namespace halo::data;
namespace fs = std::filesystem;

using halo::test::world_rank;
using halo::test::world_size;

namespace {

// Rank 0 writes the files; the directory name is rank 0's pid, shared by broadcast.
std::string shared_dir(const std::string& format) {
  const std::string dir = halo::test::shared_temp_path("halo-mpi-open-" + format);
  if (world_rank() == 0) {
    fs::remove_all(dir);
    GenerateOptions g;
    g.format = format;
    g.out_dir = dir;
    g.samples = 7;
    g.size = 8;
    g.height = 8;
    g.width = 12;
    g.per_shard = 3;  // shards of 3, 3 and 1 samples
    generate(g);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  return dir;
}

int64_t sum_over_ranks(int64_t v) {
  int64_t s = 0;
  MPI_Allreduce(&v, &s, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
  return s;
}

}  // namespace

TEST_CASE("driver start-up: only rank 0 opens the data files; the others read the same samples") {
  // packed shards with the minmax statistics inside; minmax from stats.h5 beside one-sample
  // files; packed shards of int16 counts (log1p)
  for (const char* format : {"packed-deepcam", "deepcam", "packed-cosmoflow"}) {
    SECTION(format) {
      const std::string dir = shared_dir(format);
      const bool packed = std::string(format).rfind("packed", 0) == 0;
      train::Driver driver(train::DriverSpec{}, train::DriverArgs{});

      const int64_t before = open_file_count();
      auto ds = driver.open_dataset(dir);
      // a loader over it opens nothing either until its first batch is read
      LoaderOptions o;
      o.batch_size = 2;
      o.comm = driver.comm();
      DataLoader loader(ds, o);
      const int64_t opened = open_file_count() - before;
      INFO("rank " << world_rank() << " opened " << opened << " file(s)");
      // every rank checks the others' counts, so all of them fail together
      REQUIRE(sum_over_ranks(world_rank() == 0 ? 0 : opened) == 0);
      // rank 0 did the work: the probe, and every shard of a packed set
      const int64_t root_opened = sum_over_ranks(world_rank() == 0 ? opened : 0);
      REQUIRE(root_opened >= (packed ? 1 + int64_t(ds->files().size()) : 2));

      const auto files = list_files(dir);
      const H5Dataset direct(files, detect_layout(files[0]), Driver::posix);
      REQUIRE(ds->files() == files);
      REQUIRE(ds->layout().format == direct.layout().format);
      REQUIRE(ds->size() == 7);
      REQUIRE(ds->sample_shape() == direct.sample_shape());
      REQUIRE(ds->label_shape() == direct.label_shape());
      REQUIRE(ds->stored_type() == direct.stored_type());
      REQUIRE(ds->norm_min() == direct.norm_min());
      REQUIRE(ds->norm_max() == direct.norm_max());
      const size_t xn = size_t(numel(ds->sample_shape())), yb = ds->label_bytes();
      std::vector<float> xa(xn), xb(xn);
      std::vector<unsigned char> ya(yb), yb_(yb);
      ReadScratch sa, sb;
      for (int64_t i = 0; i < ds->size(); ++i) {
        INFO("sample " << i << " (" << direct.describe(i) << ")");
        REQUIRE(ds->describe(i) == direct.describe(i));
        direct.read(i, xa.data(), ya.data(), sa);
        ds->read(i, xb.data(), yb_.data(), sb);
        REQUIRE(std::memcmp(xa.data(), xb.data(), xn * sizeof(float)) == 0);
        REQUIRE(std::memcmp(ya.data(), yb_.data(), yb) == 0);
      }
      // and the loader serves this rank's share of them
      loader.start_epoch(0);
      int64_t seen = 0;
      while (const Batch* b = loader.next()) seen += b->real;
      REQUIRE(sum_over_ranks(seen) == 7);

      MPI_Barrier(MPI_COMM_WORLD);
      if (world_rank() == 0) fs::remove_all(dir);
    }
  }
}

TEST_CASE("driver start-up: a data set that rank 0 cannot open fails on every rank with its message") {
  const std::string dir = shared_dir("packed-cosmoflow");
  train::Driver driver(train::DriverSpec{}, train::DriverArgs{});
  // a shard of another shape among the others: rank 0's check, thrown everywhere
  if (world_rank() == 0) {
    GenerateOptions g;
    g.format = "packed-cosmoflow";
    g.out_dir = dir + "/other";
    g.samples = 2;
    g.size = 4;
    g.per_shard = 2;
    const auto other = generate(g);
    fs::rename(other.at(0), dir + "/zz-other.h5");
    fs::remove_all(dir + "/other");
  }
  MPI_Barrier(MPI_COMM_WORLD);
  REQUIRE_THROWS_AS(driver.open_dataset(dir), IOError);
  REQUIRE_THROWS_WITH(driver.open_dataset(dir), Catch::Contains("zz-other.h5") && Catch::Contains("samples of shape"));
  REQUIRE_THROWS_WITH(driver.open_dataset(dir + "/missing"), Catch::Contains("no data at"));
  MPI_Barrier(MPI_COMM_WORLD);
  if (world_rank() == 0) fs::remove_all(dir);
}
