// Exercises each dependency that an installed Halo must carry to its users: MPI headers and
// library, HDF5 (a checkpoint round trip), yaml-cpp behind Config, and the generated
// config.hpp, and Kokkos with the interop header when this Halo was built with it.
// Exits non-zero with a message on the first mismatch.
#include <mpi.h>

#include <cstdio>
#include <string>
#include <vector>

#include "halo/config.hpp"
#include "halo/tensor/tensor.hpp"
#include "halo/train/checkpoint.hpp"
#include "halo/util/config.hpp"
#if HALO_ENABLE_KOKKOS
#include "halo/interop/kokkos.hpp"
#endif

static int fail(const std::string& what) {
  std::fprintf(stderr, "halo-consumer: %s\n", what.c_str());
  return 1;
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  int rc = 0;
  try {
    halo::Config cfg = halo::Config::parse("model:\n  width: 3\n");
    const int64_t width = cfg.get_int("model.width", 0);
    if (width != 3) rc = fail("Config read model.width = " + std::to_string(width) + ", expected 3");

    std::vector<float> values = {1.5f, -2.0f, 0.25f, 4.0f, 8.0f, -0.5f};
    halo::train::CheckpointData out;
    out.tensors["w"] = halo::Tensor::from_vector(values, {2, width});
    out.integers["step"] = 7;
    const std::string path = "consumer_rank" + std::to_string(rank) + ".h5";
    halo::train::save_checkpoint(path, out);
    halo::train::CheckpointData in = halo::train::load_checkpoint(path);
    std::remove(path.c_str());
    if (in.integers["step"] != 7) rc = fail("checkpoint step did not round-trip");
    if (in.tensors["w"].to_vector<float>() != values) rc = fail("checkpoint tensor did not round-trip");
#if HALO_ENABLE_KOKKOS
    Kokkos::initialize(argc, argv);
    {
      Kokkos::View<float**, Kokkos::HostSpace> field("field", 2, 3);
      Kokkos::deep_copy(field, 1.25f);
      halo::Tensor t = halo::interop::from_view(field);
      if (t.raw_data() != field.data() || t.to_vector<float>()[5] != 1.25f)
        rc = fail("Kokkos view was not wrapped in place");
    }
    Kokkos::finalize();
#endif
  } catch (const std::exception& e) {
    rc = fail(e.what());
  }
  if (rc == 0 && rank == 0) std::printf("halo-consumer: Halo %s works from its installed package\n", HALO_VERSION);
  MPI_Finalize();
  return rc;
}
