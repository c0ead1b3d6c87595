// dist::read_on_root: rank 0 alone runs the read (a configuration file, a directory listing)
// and every rank gets its result, or its error (type and message); the packing of file lists
// and layouts used by the drivers' start-up.
#include <catch2/catch.hpp>

#include <mpi.h>

#include "halo/data/format.hpp"
#include "halo/dist/root_read.hpp"
#include "halo/util/error.hpp"

using namespace halo;

TEST_CASE("read_on_root runs the read on rank 0 only and gives every rank its text", "[dist][root_read]") {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  int calls = 0;
  // Each rank would read something different: only rank 0's must come back.
  const std::string text = dist::read_on_root(MPI_COMM_WORLD, [&] {
    ++calls;
    return "rank " + std::to_string(rank) + std::string(100000, 'x');
  });
  REQUIRE(text == "rank 0" + std::string(100000, 'x'));
  int total = 0;
  MPI_Allreduce(&calls, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  REQUIRE(total == 1);
  REQUIRE(calls == (rank == 0 ? 1 : 0));
  REQUIRE(dist::read_on_root(MPI_COMM_WORLD, [] { return std::string(); }).empty());
}

TEST_CASE("an error on rank 0 is thrown on every rank with its type and message", "[dist][root_read]") {
  REQUIRE_THROWS_MATCHES(dist::read_on_root(MPI_COMM_WORLD, []() -> std::string {
                           throw ConfigError("cannot open configuration file 'x.yaml'");
                         }),
                         ConfigError, Catch::Message("cannot open configuration file 'x.yaml'"));
  REQUIRE_THROWS_AS(dist::read_on_root(MPI_COMM_WORLD, []() -> std::string { throw IOError("no data"); }), IOError);
  // Still in step: a later broadcast pairs up.
  REQUIRE(dist::read_on_root(MPI_COMM_WORLD, [] { return std::string("after"); }) == "after");
}

TEST_CASE("file lists and layouts survive the packing", "[dist][root_read]") {
  const std::vector<std::string> files{"/a/b.h5", "", std::string("odd\0name\n", 9), "/c.hdf5"};
  REQUIRE(dist::unpack_strings(dist::pack_strings(files)) == files);
  REQUIRE(dist::unpack_strings(dist::pack_strings({})).empty());
  for (data::Layout l : {data::cosmoflow_mlperf(), data::cosmoflow_lbann(), data::cosmoflow_raw(32),
                         data::deepcam("/x/stats.h5")}) {
    l.stats_max = "with\nnewline and : colon";
    const data::Layout r = data::decode_layout(data::encode_layout(l));
    REQUIRE(r.format == l.format);
    REQUIRE(r.data == l.data);
    REQUIRE(r.label == l.label);
    REQUIRE(r.axes == l.axes);
    REQUIRE(r.packed == l.packed);
    REQUIRE(r.transform == l.transform);
    REQUIRE(r.label_kind == l.label_kind);
    REQUIRE(r.subvolume == l.subvolume);
    REQUIRE(r.stats_file == l.stats_file);
    REQUIRE(r.stats_min == l.stats_min);
    REQUIRE(r.stats_max == l.stats_max);
    REQUIRE(r.num_classes == l.num_classes);
  }
}
