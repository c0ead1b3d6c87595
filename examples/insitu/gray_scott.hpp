// The simulation of halo-insitu-dist: the Gray-Scott reaction-diffusion system in 3D,
//
//   du/dt = Du lap(u) - u v^2 + F (1 - u)
//   dv/dt = Dv lap(v) + u v^2 - (F + k) v
//
// on a periodic grid (unit spacing), explicit Euler with a 7-point Laplacian, in Kokkos
// kernels over this rank's slab (slab.hpp). From a few seeded blobs it grows spots and
// stripes: fields with sharp, moving structure whose evolution is local and nonlinear,
// which is what a convolutional surrogate should be able to learn and a linear one cannot.
//
// Every cell's update reads the same neighbours in the same order whatever the
// decomposition, and the initial state is a function of global coordinates only, so a run
// on any number of ranks produces bitwise the same field as a run on one.
#pragma once
#include <cmath>
#include <cstdint>

#include "slab.hpp"

namespace insitu {

struct GrayScottParams {
  // Du dt * 6 must stay below 1 for the explicit scheme to be stable (0.6 here). F and k
  // sit where spots keep splitting and dying instead of settling into a steady pattern, so
  // the fields keep changing for as long as the run lasts and there is always something
  // to learn (with F = 0.03, k = 0.06 the change over a few steps fades a hundredfold).
  float Du = 0.1f, Dv = 0.05f;
  float F = 0.022f, k = 0.051f;
  float dt = 1.0f;
  int blobs = 12;      // seeded blobs of (u, v) = (0.5, 0.25) in a (1, 0) background
  int blob_radius = 3;
  uint64_t seed = 1;
};

class GrayScott {
 public:
  GrayScott(const Slab& slab, const GrayScottParams& p)
      : slab_(slab), p_(p), cur_(slab.allocate("gray_scott")), next_(slab.allocate("gray_scott_next")) {
    initialise();
  }

  /// One time step: fill the ghost planes from the neighbours, then update every owned cell.
  void step() {
    exchange_ghosts(slab_, cur_);
    const Field u = cur_, out = next_;
    const int nx = slab_.nx, ny = slab_.ny;
    const GrayScottParams p = p_;
    Kokkos::parallel_for(
        "gray_scott_step",
        Kokkos::MDRangePolicy<Kokkos::DefaultHostExecutionSpace, Kokkos::Rank<3>>({1, 0, 0}, {slab_.nz_local + 1, ny, nx}),
        [=](int z, int y, int x) {
          const int xm = x == 0 ? nx - 1 : x - 1, xp = x == nx - 1 ? 0 : x + 1;
          const int ym = y == 0 ? ny - 1 : y - 1, yp = y == ny - 1 ? 0 : y + 1;
          float lap[2];
          for (int s = 0; s < 2; ++s)
            lap[s] = u(z, y, xm, s) + u(z, y, xp, s) + u(z, ym, x, s) + u(z, yp, x, s) + u(z - 1, y, x, s) +
                     u(z + 1, y, x, s) - 6.0f * u(z, y, x, s);
          const float a = u(z, y, x, 0), b = u(z, y, x, 1);
          const float uvv = a * b * b;
          out(z, y, x, 0) = a + p.dt * (p.Du * lap[0] - uvv + p.F * (1.0f - a));
          out(z, y, x, 1) = b + p.dt * (p.Dv * lap[1] + uvv - (p.F + p.k) * b);
        });
    Kokkos::fence();
    std::swap(cur_, next_);
    ++steps_;
  }

  /// The current field (ghost planes as of the last exchange; owned planes current).
  const Field& field() const { return cur_; }
  const Slab& slab() const { return slab_; }
  int64_t steps() const { return steps_; }

 private:
  // A hash of (seed, global cell): the same on every decomposition.
  static float noise(uint64_t seed, int64_t cell) {
    uint64_t h = (seed + 1) * 0x9E3779B97F4A7C15ull ^ uint64_t(cell) * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 31;
    h *= 0x94D049BB133111EBull;
    h ^= h >> 29;
    return float(h >> 40) / float(1 << 24);  // [0, 1)
  }

  void initialise() {
    // Blob centres from a small generator every rank runs identically.
    Kokkos::View<int*, Kokkos::HostSpace> centre("blob_centres", 3 * size_t(p_.blobs));
    uint64_t s = p_.seed * 0x2545F4914F6CDD1Dull + 7;
    for (size_t i = 0; i < centre.extent(0); ++i) {
      s ^= s << 13;
      s ^= s >> 7;
      s ^= s << 17;
      centre(i) = int(s >> 33);
    }
    const Field f = cur_;
    const Slab sl = slab_;
    const GrayScottParams p = p_;
    Kokkos::parallel_for(
        "gray_scott_init",
        Kokkos::MDRangePolicy<Kokkos::DefaultHostExecutionSpace, Kokkos::Rank<3>>({1, 0, 0}, {sl.nz_local + 1, sl.ny, sl.nx}),
        [=](int z, int y, int x) {
          const int gz = sl.z0 + z - 1;
          bool inside = false;
          for (int i = 0; i < p.blobs && !inside; ++i) {
            // Periodic distance to the centre along each axis.
            auto d = [](int a, int c, int n) {
              const int r = std::abs(a - c % n);
              return std::min(r, n - r);
            };
            const int dx = d(x, centre(3 * i), sl.nx), dy = d(y, centre(3 * i + 1), sl.ny), dz = d(gz, centre(3 * i + 2), sl.nz);
            inside = dx * dx + dy * dy + dz * dz <= p.blob_radius * p.blob_radius;
          }
          const int64_t cell = (int64_t(gz) * sl.ny + y) * sl.nx + x;
          const float jitter = 0.05f * (noise(p.seed, cell) - 0.5f);
          f(z, y, x, 0) = inside ? 0.5f + jitter : 1.0f;
          f(z, y, x, 1) = inside ? 0.25f - jitter : 0.0f;
        });
    Kokkos::fence();
  }

  Slab slab_;
  GrayScottParams p_;
  Field cur_, next_;
  int64_t steps_ = 0;
};

}  // namespace insitu
