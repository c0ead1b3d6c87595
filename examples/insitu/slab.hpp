// The domain decomposition of halo-insitu-dist: the global periodic grid nx x ny x nz is
// cut into slabs along z, one per rank, each owning nz/ranks whole xy-planes.
//
// Slabs along z keep the halo exchange simple and cheap: a field is stored z-slowest
// (z, y, x, species), so an xy-plane of every species is one contiguous block and a ghost
// layer travels as a single message with no packing. One ghost plane on each side is all a
// 7-point stencil needs; x and y are not cut, so their periodic wrap stays local.
#pragma once
#include <mpi.h>

#include <Kokkos_Core.hpp>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace insitu {

/// Two species per cell, z-slowest: (z plane incl. one ghost plane on each side, y, x, species).
using Field = Kokkos::View<float****, Kokkos::LayoutRight, Kokkos::HostSpace>;

struct Slab {
  int nx = 0, ny = 0, nz = 0;  // global grid
  int z0 = 0, nz_local = 0;    // first owned global plane, owned planes
  int rank = 0, size = 1;
  int below = 0, above = 0;    // ranks owning the planes z0-1 and z0+nz_local (periodic)
  MPI_Comm comm = MPI_COMM_NULL;

  /// The slab of this rank of `comm`. Throws std::invalid_argument, naming the sizes, when
  /// the ranks do not divide nz: uneven slabs would work but make every rank's share of
  /// both simulation and training differ, which hides the cost comparison this shows.
  static Slab make(MPI_Comm comm, int nx, int ny, int nz) {
    Slab s;
    s.comm = comm;
    MPI_Comm_rank(comm, &s.rank);
    MPI_Comm_size(comm, &s.size);
    if (nx < 1 || ny < 1 || nz < 1)
      throw std::invalid_argument("grid " + std::to_string(nx) + "x" + std::to_string(ny) + "x" + std::to_string(nz) +
                                  " has an empty side");
    if (nz % s.size != 0)
      throw std::invalid_argument("the grid's z size " + std::to_string(nz) + " is not divisible by the " +
                                  std::to_string(s.size) + " ranks (each rank owns nz/ranks whole planes): use a z size" +
                                  " that is a multiple of " + std::to_string(s.size));
    s.nx = nx;
    s.ny = ny;
    s.nz = nz;
    s.nz_local = nz / s.size;
    s.z0 = s.rank * s.nz_local;
    s.below = (s.rank + s.size - 1) % s.size;
    s.above = (s.rank + 1) % s.size;
    return s;
  }

  int64_t plane_floats() const { return int64_t(ny) * nx * 2; }
  Field allocate(const std::string& label) const { return Field(label, nz_local + 2, ny, nx, 2); }
};

/// Fills the two ghost planes of `f` from the neighbouring slabs (periodic in z). With one
/// rank both neighbours are the rank itself and MPI copies the planes across the domain.
inline void exchange_ghosts(const Slab& s, const Field& f) {
  const int n = int(s.plane_floats());
  float* first = &f(1, 0, 0, 0);                // lowest owned plane
  float* last = &f(s.nz_local, 0, 0, 0);        // highest owned plane
  float* ghost_below = &f(0, 0, 0, 0);
  float* ghost_above = &f(s.nz_local + 1, 0, 0, 0);
  // Upwards: my highest plane becomes the ghost below of the rank above.
  MPI_Sendrecv(last, n, MPI_FLOAT, s.above, 0, ghost_below, n, MPI_FLOAT, s.below, 0, s.comm, MPI_STATUS_IGNORE);
  // Downwards: my lowest plane becomes the ghost above of the rank below.
  MPI_Sendrecv(first, n, MPI_FLOAT, s.below, 1, ghost_above, n, MPI_FLOAT, s.above, 1, s.comm, MPI_STATUS_IGNORE);
}

/// The owned planes of every rank, in global z order, on rank 0 (empty elsewhere).
inline std::vector<float> gather_owned(const Slab& s, const Field& f) {
  const int n = int(s.plane_floats()) * s.nz_local;
  std::vector<float> all(s.rank == 0 ? size_t(n) * s.size : 0);
  MPI_Gather(&f(1, 0, 0, 0), n, MPI_FLOAT, all.data(), n, MPI_FLOAT, 0, s.comm);
  return all;
}

/// FNV-1a over the bytes: equal hashes mean bitwise-equal fields.
inline uint64_t fnv1a(const std::vector<float>& v) {
  uint64_t h = 1469598103934665603ull;
  const auto* p = reinterpret_cast<const unsigned char*>(v.data());
  for (size_t i = 0; i < v.size() * sizeof(float); ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

}  // namespace insitu
