// halo-insitu: a small Kokkos simulation produces fields and Halo learns from them in the same
// process, on the same memory, with no files in between.
//
// The simulation is the 1D heat equation on a periodic grid, u_t = kappa u_xx, advanced by
// explicit finite differences in Kokkos kernels. Each training step it starts a batch of
// random smooth initial fields, writes them into a Kokkos view, and advances a copy by
// `horizon` time steps into a second view. Halo wraps both views as tensors (no copy) and
// trains a small network to predict the field `horizon` steps ahead: a learned surrogate of
// the solver. The loss it prints falls as the network learns the diffusion operator.
//
//   halo-insitu [--steps N] [--grid N] [--batch N] [--horizon N] [--lr X] [--require-drop F]
#include <Kokkos_Core.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "halo/interop/kokkos.hpp"
#include "halo/nn/activation.hpp"
#include "halo/nn/linear.hpp"
#include "halo/nn/losses.hpp"
#include "halo/nn/model.hpp"
#include "halo/optim/adam.hpp"

namespace {

constexpr double kPi = 3.14159265358979323846;

struct Settings {
  int steps = 400;        // training steps (one fresh simulated batch each)
  int grid = 64;          // grid points of the periodic 1D domain
  int batch = 32;         // simulations per training step
  int horizon = 20;       // solver steps between a network input and its target
  double lr = 3e-3;       // Adam learning rate
  double require_drop = 0;  // if > 0: exit 1 unless first loss / last loss >= this
};

Settings parse(int argc, char** argv) {
  Settings s;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::printf(
          "usage: halo-insitu [--steps N] [--grid N] [--batch N] [--horizon N] [--lr X] [--require-drop F]\n"
          "  A Kokkos heat-equation solver feeds a network that learns to predict its fields, in process.\n");
      std::exit(0);
    }
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "halo-insitu: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a.rfind("--kokkos", 0) == 0) continue;  // Kokkos' own options, read by Kokkos
    if (a == "--steps") s.steps = std::atoi(value());
    else if (a == "--grid") s.grid = std::atoi(value());
    else if (a == "--batch") s.batch = std::atoi(value());
    else if (a == "--horizon") s.horizon = std::atoi(value());
    else if (a == "--lr") s.lr = std::atof(value());
    else if (a == "--require-drop") s.require_drop = std::atof(value());
    else {
      std::fprintf(stderr, "halo-insitu: unknown option %s (--help lists them)\n", a.c_str());
      std::exit(2);
    }
  }
  return s;
}

using Field = Kokkos::View<float**, Kokkos::LayoutRight, Kokkos::HostSpace>;  // (simulation, grid point)

/// The simulation: random smooth initial conditions and explicit heat-equation steps.
class HeatSimulation {
 public:
  HeatSimulation(int batch, int grid) : u_("u", batch, grid), scratch_("scratch", batch, grid), grid_(grid) {}

  /// Sums of a few sine modes with random amplitudes and phases, different every call.
  void random_initial(Field out, uint64_t seed) const {
    const int n = grid_;
    Kokkos::parallel_for("initial", Kokkos::RangePolicy<Kokkos::DefaultHostExecutionSpace>(0, out.extent(0)),
                         [=](int b) {
      uint64_t s = seed * 0x9E3779B97F4A7C15ull + uint64_t(b) * 0xBF58476D1CE4E5B9ull + 1;
      auto uniform = [&s]() {  // xorshift64*: simple, reproducible, good enough for inputs
        s ^= s >> 12; s ^= s << 25; s ^= s >> 27;
        return double((s * 0x2545F4914F6CDD1Dull) >> 11) / double(1ull << 53);
      };
      double amp[4], phase[4];
      for (int k = 0; k < 4; ++k) {
        amp[k] = (2 * uniform() - 1) / (k + 1);
        phase[k] = 2 * kPi * uniform();
      }
      for (int i = 0; i < n; ++i) {
        double x = 2 * kPi * i / n, v = 0;
        for (int k = 0; k < 4; ++k) v += amp[k] * std::sin((k + 1) * x + phase[k]);
        out(b, i) = float(v);
      }
    });
  }

  /// Advances `from` by `steps` explicit steps into `to` (kappa dt / dx^2 = 0.25: stable).
  void advance(Field from, Field to, int steps) {
    Kokkos::deep_copy(u_, from);
    const int n = grid_;
    const float r = 0.25f;
    for (int t = 0; t < steps; ++t) {
      Field u = u_, next = scratch_;
      Kokkos::parallel_for("heat_step", Kokkos::RangePolicy<Kokkos::DefaultHostExecutionSpace>(0, u.extent(0)),
                           [=](int b) {
        for (int i = 0; i < n; ++i) {
          const int left = (i + n - 1) % n, right = (i + 1) % n;
          next(b, i) = u(b, i) + r * (u(b, left) - 2 * u(b, i) + u(b, right));
        }
      });
      std::swap(u_, scratch_);
    }
    Kokkos::deep_copy(to, u_);
  }

 private:
  Field u_, scratch_;
  int grid_;
};

int run(const Settings& s) {
  HeatSimulation sim(s.batch, s.grid);
  Field now("now", s.batch, s.grid), later("later", s.batch, s.grid);
  // The network reads and the loss compares the simulation's own memory.
  halo::Tensor input = halo::interop::from_view(now);
  halo::Tensor target = halo::interop::from_view(later);

  namespace nn = halo::nn;
  nn::Model model;
  model.input({s.grid}, "field");
  model.append(std::make_shared<nn::Linear>(s.grid, 2 * s.grid), "hidden");
  model.append(std::make_shared<nn::Tanh>(), "tanh");
  model.append(std::make_shared<nn::Linear>(2 * s.grid, s.grid), "out");
  model.compile();
  model.init(1234);
  halo::optim::AdamOptions adam;
  adam.lr = s.lr;
  halo::optim::Adam optimizer(model.parameters(), adam);
  nn::MSELoss loss;
  std::printf("%s", model.summary().c_str());

  double first = 0, last = 0, window = 0;
  for (int step = 0; step < s.steps; ++step) {
    sim.random_initial(now, uint64_t(step) + 1);  // the simulation writes the input...
    sim.advance(now, later, s.horizon);          // ...and its own future, the target
    model.zero_grad();
    const double l = loss.forward(model.forward(input), target);
    model.backward(loss.backward());
    optimizer.step();
    window += l;
    if (step == 0) first = l;
    if ((step + 1) % 50 == 0 || step + 1 == s.steps) {
      const int span = (step + 1) % 50 == 0 ? 50 : (step + 1) % 50;
      last = window / span;
      std::printf("step %5d  mse %.3e\n", step + 1, last);
      window = 0;
    }
  }
  const double drop = last > 0 ? first / last : INFINITY;
  std::printf("halo-insitu: loss fell %.1fx (first step %.3e, last %d steps %.3e)\n", drop, first,
              s.steps % 50 ? s.steps % 50 : 50, last);
  if (s.require_drop > 0 && !(drop >= s.require_drop)) {
    std::fprintf(stderr, "halo-insitu: loss fell only %.1fx, less than the required %.1fx\n", drop, s.require_drop);
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Settings settings = parse(argc, argv);
  Kokkos::ScopeGuard kokkos(argc, argv);
  try {
    return run(settings);  // every view and tensor is gone before Kokkos finalises
  } catch (const std::exception& e) {
    std::fprintf(stderr, "halo-insitu: %s\n", e.what());
    return 1;
  }
}
