// halo-insitu-dist: a distributed simulation trains its own surrogate while it runs.
//
// Every rank advances its slab of a 3D Gray-Scott reaction-diffusion system (Kokkos kernels,
// ghost planes exchanged over MPI every step; gray_scott.hpp, slab.hpp). Every `--every`
// steps each rank keeps a copy of its fields; `--horizon` steps later it cuts patches from
// that copy and from the present and takes `--iters` optimizer steps of a 3D CNN that learns
// the change over the horizon (surrogate.hpp). The CNN is replicated on the same ranks, in
// the same process: each rank's samples come from its own slab, the gradients are averaged
// across ranks. Nothing goes through files.
//
// Rank 0 prints the loss of every training round and, at the end, the time the simulation
// and the training took, as one line a script can read:
//   insitu: ranks=2 grid=32x32x32 steps=... rounds=... sim_s=... sim_share=... train_s=...
//           train_share=... train_comm_s=... first_loss=... last_loss=... drop=... nochange_loss=... beat=...
//
// --verify S checks the decomposition instead: it runs S steps on all ranks, gathers the
// field, reruns the same S steps on rank 0 alone and requires both fields to be bitwise equal.
#include <mpi.h>

#include <Kokkos_Core.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "gray_scott.hpp"
#include "halo/dist/communicator.hpp"
#include "halo/interop/kokkos.hpp"
#include "halo/ops/elementwise.hpp"
#include "halo/util/threads.hpp"
#include "halo/util/timer.hpp"
#include "slab.hpp"
#include "surrogate.hpp"

namespace {

struct Settings {
  int nx = 32, ny = 32, nz = 32;  // global grid
  int steps = 600;                // simulation time steps
  int warmup = 100;               // steps before the first snapshot (lets patterns form)
  int every = 10;                 // a training round every this many steps
  int horizon = 3;                // the surrogate predicts this many steps ahead
  int iters = 8;                  // optimizer steps per training round
  int batch = 16;                 // patches per rank per optimizer step
  int patch = 8;                  // side of a predicted cube
  int width = 16;                 // hidden channels of the surrogate
  double lr = 2e-3;
  int threads = 0;                // 0: Halo's default (OMP_NUM_THREADS)
  uint64_t seed = 1;
  double require_drop = 0;        // > 0: exit 1 unless first_loss / last_loss >= this
  double require_beat = 0;        // > 0: exit 1 unless no-change loss / last_loss >= this
  int verify = 0;                 // > 0: only check the decomposition after this many steps
};

const char* kUsage =
    "usage: mpiexec -n R halo-insitu-dist [options]\n"
    "  A 3D Gray-Scott simulation decomposed in z-slabs over R ranks trains, while it runs, a 3D CNN\n"
    "  that predicts its fields --horizon steps ahead; data-parallel on the same ranks, no files.\n"
    "  --grid N | NXxNYxNZ   global grid (default 32; NZ must be a multiple of R)\n"
    "  --steps N             simulation steps (600)\n"
    "  --warmup N            steps before the first training round (100)\n"
    "  --every N             a training round every N steps (10)\n"
    "  --horizon K           predict K steps ahead, 1..3 and at most --every (3)\n"
    "  --iters N             optimizer steps per round (8)\n"
    "  --batch N             patches per rank per optimizer step (16)\n"
    "  --patch N             side of a predicted cube; input cubes are N+6 (8)\n"
    "  --width N             hidden channels of the CNN (16)\n"
    "  --lr X                Adam learning rate (2e-3)\n"
    "  --threads N           threads per rank for training (default: OMP_NUM_THREADS)\n"
    "  --seed N              initial blobs and patch positions (1)\n"
    "  --require-drop F      exit 1 unless the first round's loss over the last rounds' is at least F\n"
    "  --require-beat F      exit 1 unless the last rounds' loss is F times below predicting no change\n"
    "  --verify S            check the decomposition: S steps on R ranks must equal S steps on one\n";

[[noreturn]] void usage_error(int rank, const std::string& what) {
  if (rank == 0) std::fprintf(stderr, "halo-insitu-dist: %s (--help lists the options)\n", what.c_str());
  MPI_Finalize();
  std::exit(2);
}

long parse_int(int rank, const std::string& opt, const char* text, long lo, long hi) {
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  if (end == text || *end != '\0') usage_error(rank, opt + " needs an integer, got '" + text + "'");
  if (v < lo || v > hi)
    usage_error(rank, opt + " " + text + " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return v;
}

double parse_real(int rank, const std::string& opt, const char* text) {
  char* end = nullptr;
  const double v = std::strtod(text, &end);
  if (end == text || *end != '\0' || !std::isfinite(v) || v < 0)
    usage_error(rank, opt + " needs a non-negative number, got '" + text + "'");
  return v;
}

Settings parse(int rank, int argc, char** argv) {
  Settings s;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      if (rank == 0) std::printf("%s", kUsage);
      MPI_Finalize();
      std::exit(0);
    }
    if (a.rfind("--kokkos", 0) == 0) continue;  // Kokkos' own options
    if (i + 1 >= argc) usage_error(rank, a + " needs a value");
    const char* v = argv[++i];
    if (a == "--grid") {
      int n[3];
      const std::string text = v;
      const size_t x1 = text.find('x'), x2 = x1 == std::string::npos ? x1 : text.find('x', x1 + 1);
      if (x1 == std::string::npos) {
        n[0] = n[1] = n[2] = int(parse_int(rank, a, v, 1, 4096));
      } else {
        if (x2 == std::string::npos) usage_error(rank, "--grid takes N or NXxNYxNZ, got '" + text + "'");
        n[0] = int(parse_int(rank, a, text.substr(0, x1).c_str(), 1, 4096));
        n[1] = int(parse_int(rank, a, text.substr(x1 + 1, x2 - x1 - 1).c_str(), 1, 4096));
        n[2] = int(parse_int(rank, a, text.substr(x2 + 1).c_str(), 1, 4096));
      }
      s.nx = n[0], s.ny = n[1], s.nz = n[2];
    } else if (a == "--steps") s.steps = int(parse_int(rank, a, v, 1, 1 << 30));
    else if (a == "--warmup") s.warmup = int(parse_int(rank, a, v, 0, 1 << 30));
    else if (a == "--every") s.every = int(parse_int(rank, a, v, 1, 1 << 30));
    else if (a == "--horizon") s.horizon = int(parse_int(rank, a, v, 1, 1 << 20));
    else if (a == "--iters") s.iters = int(parse_int(rank, a, v, 1, 1 << 20));
    else if (a == "--batch") s.batch = int(parse_int(rank, a, v, 1, 4096));
    else if (a == "--patch") s.patch = int(parse_int(rank, a, v, 1, 1024));
    else if (a == "--width") s.width = int(parse_int(rank, a, v, 1, 1024));
    else if (a == "--lr") s.lr = parse_real(rank, a, v);
    else if (a == "--threads") s.threads = int(parse_int(rank, a, v, 1, 1024));
    else if (a == "--seed") s.seed = uint64_t(parse_int(rank, a, v, 0, 1L << 40));
    else if (a == "--require-drop") s.require_drop = parse_real(rank, a, v);
    else if (a == "--require-beat") s.require_beat = parse_real(rank, a, v);
    else if (a == "--verify") s.verify = int(parse_int(rank, a, v, 1, 1 << 30));
    else usage_error(rank, "unknown option " + a);
  }
  if (s.horizon > insitu::Surrogate::kMargin)
    usage_error(rank, "--horizon " + std::to_string(s.horizon) + " is too far: the surrogate sees " +
                          std::to_string(insitu::Surrogate::kMargin) + " cells around each cell it predicts, and " +
                          "a step carries information one cell, so it can look at most " +
                          std::to_string(insitu::Surrogate::kMargin) + " steps ahead");
  if (s.lr <= 0) usage_error(rank, "--lr must be positive");
  if (s.verify == 0 && s.warmup + s.horizon > s.steps)
    usage_error(rank, "no training round fits: the first needs --warmup + --horizon = " +
                          std::to_string(s.warmup + s.horizon) + " steps, but --steps is " + std::to_string(s.steps));
  if (s.horizon > s.every)
    usage_error(rank, "--horizon " + std::to_string(s.horizon) + " is longer than --every " + std::to_string(s.every) +
                          ": a round's target would come after the next round's input");
  return s;
}

insitu::GrayScottParams physics(const Settings& s) {
  insitu::GrayScottParams p;
  p.seed = s.seed;
  return p;
}

/// --verify: the field after S steps on every rank must equal, bit for bit, the one a single
/// rank computes; a ghost plane sent the wrong way or a slab offset off by one breaks it.
int verify(const Settings& s, const insitu::Slab& slab) {
  insitu::GrayScott sim(slab, physics(s));
  for (int t = 0; t < s.verify; ++t) sim.step();
  const std::vector<float> all = insitu::gather_owned(slab, sim.field());
  int ok = 1;
  if (slab.rank == 0) {
    const insitu::Slab one = insitu::Slab::make(MPI_COMM_SELF, s.nx, s.ny, s.nz);
    insitu::GrayScott ref(one, physics(s));
    for (int t = 0; t < s.verify; ++t) ref.step();
    const std::vector<float> single = insitu::gather_owned(one, ref.field());
    double max_diff = 0, sum_v = 0;
    for (size_t i = 0; i < all.size(); ++i) {
      max_diff = std::max(max_diff, double(std::fabs(all[i] - single[i])));
      if (i % 2) sum_v += all[i];
    }
    ok = all == single;
    std::printf("insitu-verify: ranks=%d grid=%dx%dx%d steps=%d hash=%016llx one_rank_hash=%016llx "
                "max_abs_diff=%.3g mean_v=%.6f match=%s\n",
                slab.size, s.nx, s.ny, s.nz, s.verify, (unsigned long long)insitu::fnv1a(all),
                (unsigned long long)insitu::fnv1a(single), max_diff, sum_v / (all.size() / 2), ok ? "yes" : "no");
  }
  MPI_Bcast(&ok, 1, MPI_INT, 0, slab.comm);
  return ok ? 0 : 1;
}

int train(const Settings& s, const insitu::Slab& slab) {
  const int in = s.patch + 2 * insitu::Surrogate::kMargin;
  if (slab.nz_local < in || s.nx < in || s.ny < in)
    throw std::invalid_argument(
        "an input patch (" + std::to_string(in) + " cells a side: --patch " + std::to_string(s.patch) +
        " + 6) does not fit in a rank's slab of " + std::to_string(s.nx) + "x" + std::to_string(s.ny) + "x" +
        std::to_string(slab.nz_local) + " cells: use a larger grid, fewer ranks or a smaller --patch");
  const bool root = slab.rank == 0;

  insitu::GrayScott sim(slab, physics(s));
  // Halo trains over its own duplicate of the world: its messages never meet the
  // simulation's halo exchange.
  halo::dist::Communicator comm(MPI_COMM_WORLD);
  insitu::SurrogateOptions so;
  so.patch = s.patch;
  so.width = s.width;
  so.lr = s.lr;
  so.seed = s.seed;
  insitu::Surrogate surrogate(comm, so);

  // The batch lives in Kokkos views that the kernels fill; the tensors share their memory.
  const insitu::PatchView x = insitu::make_patches("inputs", s.batch, in);
  const insitu::PatchView y = insitu::make_patches("targets", s.batch, s.patch);
  const halo::Tensor tx = halo::interop::from_view(x), ty = halo::interop::from_view(y);
  insitu::Field snapshot = slab.allocate("snapshot");
  // Targets are the change over the horizon divided by its RMS in the first round (over all
  // ranks), so the first round's no-change baseline is 1 and later losses read as fractions
  // of it. Fixed after that: a later loss that falls is the network improving, not the
  // yardstick moving.
  float scale = 0;

  if (root)
    std::printf("halo-insitu-dist: %d ranks, grid %dx%dx%d in z-slabs of %d planes; a round every %d steps from step %d, "
                "%d steps of %d patches per rank, %d -> %d cells, horizon %d\n",
                slab.size, s.nx, s.ny, s.nz, slab.nz_local, s.every, s.warmup, s.iters, s.batch, in, s.patch,
                s.horizon);
  if (root) std::printf("%s", surrogate.model().summary().c_str());
  double sim_s = 0, train_s = 0;
  std::vector<double> losses, baselines;  // per round, averaged over ranks and the round's steps
  int snap_step = -1;
  MPI_Barrier(slab.comm);
  const double start = halo::now_seconds();
  if (s.warmup == 0) {  // no warm-up: the first round learns from the initial state
    Kokkos::deep_copy(snapshot, sim.field());
    snap_step = 0;
  }
  for (int t = 1; t <= s.steps; ++t) {
    double t0 = halo::now_seconds();
    sim.step();
    sim_s += halo::now_seconds() - t0;

    t0 = halo::now_seconds();
    if (snap_step >= 0 && t == snap_step + s.horizon) {  // the snapshot's future has arrived: learn it
      const uint64_t round = losses.size();
      double sums[2] = {0, 0};  // this rank's losses and no-change losses over the round
      for (int it = 0; it < s.iters; ++it) {
        const uint64_t seed = ((s.seed * 1000003 + round) * 8191 + uint64_t(it)) * 131 + uint64_t(slab.rank);
        if (scale == 0) {  // first round: measure the change's RMS, then draw the same patches scaled
          insitu::sample_patches(slab, snapshot, sim.field(), insitu::Surrogate::kMargin, 1.0f, seed, x, y);
          double ms = halo::ops::sum_squares(ty) / double(ty.numel());
          comm.allreduce_sum(&ms, 1, "target scale");
          scale = ms > 0 ? float(1.0 / std::sqrt(ms / slab.size)) : 1.0f;
        }
        insitu::sample_patches(slab, snapshot, sim.field(), insitu::Surrogate::kMargin, scale, seed, x, y);
        sums[0] += surrogate.train_step(tx, ty);
        sums[1] += halo::ops::sum_squares(ty) / double(ty.numel());  // what predicting "no change" scores
      }
      comm.allreduce_sum(sums, 2, "round losses");  // equal batches: the mean of rank means is the global mean
      losses.push_back(sums[0] / (s.iters * slab.size));
      baselines.push_back(sums[1] / (s.iters * slab.size));
      if (root)
        std::printf("round %4zu  step %6d  mse %.4e  no-change %.4e\n", losses.size(), t, losses.back(),
                    baselines.back());
      snap_step = -1;
    }
    if (t >= s.warmup && (t - s.warmup) % s.every == 0) {  // hand this moment to the learner
      Kokkos::deep_copy(snapshot, sim.field());
      snap_step = t;
    }
    train_s += halo::now_seconds() - t0;
  }
  const double wall = halo::now_seconds() - start;

  // One round is a handful of small batches: the end of the run is judged on the mean of
  // the last rounds (up to 5), the start on the first round, before any learning.
  const size_t tail = std::min<size_t>(5, losses.size());
  double last = 0, base = 0;
  for (size_t i = losses.size() - tail; i < losses.size(); ++i) last += losses[i] / tail, base += baselines[i] / tail;
  const double first = losses.front();
  const double drop = last > 0 ? first / last : INFINITY, beat = last > 0 ? base / last : INFINITY;
  if (root) {
    std::printf("insitu: ranks=%d grid=%dx%dx%d steps=%d rounds=%zu sim_s=%.3f sim_share=%.3f train_s=%.3f "
                "train_share=%.3f train_comm_s=%.3f first_loss=%.4e last_loss=%.4e drop=%.2f nochange_loss=%.4e beat=%.2f\n",
                slab.size, s.nx, s.ny, s.nz, s.steps, losses.size(), sim_s, sim_s / wall, train_s, train_s / wall,
                surrogate.comm_seconds(), first, last, drop, base, beat);
    std::fflush(stdout);
  }
  int rc = 0;
  if (s.require_drop > 0 && !(drop >= s.require_drop)) {
    if (root) std::fprintf(stderr, "halo-insitu-dist: the loss fell %.2fx, less than the required %.2fx\n", drop,
                           s.require_drop);
    rc = 1;
  }
  if (s.require_beat > 0 && !(beat >= s.require_beat)) {
    if (root) std::fprintf(stderr, "halo-insitu-dist: the loss is %.2fx below predicting no change, less than the "
                           "required %.2fx\n", beat, s.require_beat);
    rc = 1;
  }
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  halo::dist::MpiSession mpi(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  const Settings s = parse(rank, argc, argv);
  if (s.threads > 0) halo::set_num_threads(s.threads);
  Kokkos::ScopeGuard kokkos(argc, argv);
  // The simulation's own communicator, as an application would have.
  MPI_Comm sim_comm;
  MPI_Comm_dup(MPI_COMM_WORLD, &sim_comm);
  int rc = 0;
  try {
    const insitu::Slab slab = insitu::Slab::make(sim_comm, s.nx, s.ny, s.nz);
    rc = s.verify > 0 ? verify(s, slab) : train(s, slab);  // views and tensors die before Kokkos
  } catch (const std::invalid_argument& e) {  // a bad setting: every rank sees the same
    if (rank == 0) std::fprintf(stderr, "halo-insitu-dist: %s\n", e.what());
    rc = 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "halo-insitu-dist: rank %d: %s\n", rank, e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Comm_free(&sim_comm);
  return rc;
}
