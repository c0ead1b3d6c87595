// The learning side of halo-insitu-dist: a small 3D CNN that predicts how the Gray-Scott
// fields change over `horizon` time steps, trained data-parallel (train::Trainer::step) on
// the ranks that run the simulation, from patches of each rank's own slab, in memory.
//
// The network sees an input cube of both species and predicts the change of both over the
// central cube `margin` cells smaller on each side: three 3x3x3 convolutions without padding
// shrink it by exactly that, so every predicted cell sees its full neighbourhood and nothing
// is guessed at a patch edge. With horizon <= margin the exact answer lies inside what the
// network sees, so the loss can keep falling instead of stalling on missing information.
#pragma once
#include <Kokkos_Core.hpp>

#include <cstdint>
#include <memory>
#include <string>

#include "halo/dist/communicator.hpp"
#include "halo/interop/kokkos.hpp"
#include "halo/nn/conv.hpp"
#include "halo/nn/losses.hpp"
#include "halo/nn/model.hpp"
#include "halo/optim/adam.hpp"
#include "halo/train/trainer.hpp"
#include "slab.hpp"

namespace insitu {

/// (sample, species, z, y, x) laid out channels-last (species fastest), the layout Halo's CPU
/// convolutions run fastest on, so the tensors over these views need no conversion.
using PatchView = Kokkos::View<float*****, Kokkos::LayoutStride, Kokkos::HostSpace>;

inline PatchView make_patches(const char* label, int n, int side) {
  const size_t c = 2, s = size_t(side);
  return PatchView(std::string(label), Kokkos::LayoutStride(size_t(n), c * s * s * s, c, 1, s, s * s * c, s, s * c, s, c));
}

/// One batch of training pairs from this rank's slab: inputs from `before` (input cubes,
/// origins random, x and y wrapping around the periodic grid, z inside the owned planes),
/// targets the change to `after` over the central cubes, multiplied by `scale`.
/// The origins depend on `seed` only, so each rank draws its own (seed it with the rank).
inline void sample_patches(const Slab& s, const Field& before, const Field& after, int margin, float scale,
                           uint64_t seed, const PatchView& x, const PatchView& y) {
  const int n = int(x.extent(0)), in = int(x.extent(2)), out = int(y.extent(2));
  Kokkos::View<int* [3], Kokkos::HostSpace> origin("patch_origins", n);
  uint64_t r = seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
  auto next = [&r](int bound) {  // xorshift64*, reproducible per seed
    r ^= r >> 12;
    r ^= r << 25;
    r ^= r >> 27;
    return int(((r * 0x2545F4914F6CDD1Dull) >> 33) % uint64_t(bound));
  };
  for (int i = 0; i < n; ++i) {
    origin(i, 0) = 1 + next(s.nz_local - in + 1);  // plane 0 is a ghost
    origin(i, 1) = next(s.ny);
    origin(i, 2) = next(s.nx);
  }
  const int nx = s.nx, ny = s.ny;
  Kokkos::parallel_for(
      "sample_patches", Kokkos::MDRangePolicy<Kokkos::DefaultHostExecutionSpace, Kokkos::Rank<4>>({0, 0, 0, 0}, {n, in, in, in}),
      [=](int i, int dz, int dy, int dx) {
        const int z = origin(i, 0) + dz, gy = (origin(i, 1) + dy) % ny, gx = (origin(i, 2) + dx) % nx;
        const bool centre = dz >= margin && dz < margin + out && dy >= margin && dy < margin + out && dx >= margin &&
                            dx < margin + out;
        for (int c = 0; c < 2; ++c) {
          x(i, c, dz, dy, dx) = before(z, gy, gx, c);
          if (centre) y(i, c, dz - margin, dy - margin, dx - margin) = scale * (after(z, gy, gx, c) - before(z, gy, gx, c));
        }
      });
  Kokkos::fence();
}

struct SurrogateOptions {
  int patch = 8;    // side of the predicted cube
  int width = 16;   // channels of the hidden layers
  double lr = 2e-3;
  uint64_t seed = 1;
};

class Surrogate {
 public:
  static constexpr int kMargin = 3;  // cells the three unpadded 3x3x3 convolutions eat per side

  /// Every rank builds the same network; the Trainer broadcasts rank 0's initial weights,
  /// so the replicas start equal and, with averaged gradients, stay equal.
  Surrogate(const halo::dist::Communicator& comm, const SurrogateOptions& o) : o_(o) {
    namespace nn = halo::nn;
    nn::ConvOptions relu;
    relu.activation.activation = halo::ops::Activation::relu;
    const int in = input_side();
    model_.input({2, in, in, in}, "fields");
    model_.append(std::make_shared<nn::Conv3d>(2, o.width, 3, relu), "conv1");
    model_.append(std::make_shared<nn::Conv3d>(o.width, o.width, 3, relu), "conv2");
    model_.append(std::make_shared<nn::Conv3d>(o.width, o.width, 1, relu), "mix");  // per-cell nonlinearity, cheap
    model_.append(std::make_shared<nn::Conv3d>(o.width, 2, 3), "change");
    model_.compile();
    model_.init(o.seed);
    halo::optim::AdamOptions adam;
    adam.lr = o.lr;
    optimizer_ = std::make_unique<halo::optim::Adam>(model_.parameters(), adam);
    halo::train::TrainerOptions to;
    to.progress = false;  // the example prints its own per-round lines
    trainer_ = std::make_unique<halo::train::Trainer>(comm, model_, *optimizer_, loss_, to);
  }
  Surrogate(const Surrogate&) = delete;
  Surrogate& operator=(const Surrogate&) = delete;

  int input_side() const { return o_.patch + 2 * kMargin; }
  halo::nn::Model& model() { return model_; }

  /// One synchronised optimizer step on this rank's batch (collective: every rank calls it;
  /// gradients averaged over ranks); returns this rank's loss.
  double train_step(const halo::Tensor& x, const halo::Tensor& y) {
    const halo::train::StepResult r = trainer_->step(x, y);
    comm_s_ += r.timings.comm_s;
    return r.loss;
  }
  /// Seconds this rank spent waiting for averaged gradients, over all steps so far.
  double comm_seconds() const { return comm_s_; }

 private:
  SurrogateOptions o_;
  halo::nn::Model model_;
  halo::nn::MSELoss loss_;
  std::unique_ptr<halo::optim::Adam> optimizer_;
  std::unique_ptr<halo::train::Trainer> trainer_;  // after what it uses: goes first
  double comm_s_ = 0;
};

}  // namespace insitu
