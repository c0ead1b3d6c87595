// halo-bench-spatial: memory per rank and step time of a CosmoFlow training step with every
// sample split over 1, 2, 4, ... ranks (spatial parallelism), and the share of the step
// spent exchanging halos and summing gradients over the group.
//
//   mpiexec -n 4 halo-bench-spatial [--sizes 128,256] [--ranks 1,2,4] [--batch 1] [--steps 2]
//                                   [--warmup 1] [--base-filters 32] [--conv-layers L]
//                                   [--threads T] [--memory-trace] [--grid DxHxW]
//
// For each volume edge and each spatial rank count s (at most the launch's size; largest
// first, the one-rank run on the launch's last rank), s ranks of the launch split every
// sample over a grid of s ranks (balanced over D, H, W,
// D first: 2 -> 2x1x1, 4 -> 2x2x1, 8 -> 2x2x2; --grid overrides it) while the others wait, and time warm-up then
// timed training steps: zero_grad, forward, MSE loss, backward (with the spatial gradient
// sums), SGD momentum step, on random data in memory. The model is the MLPerf CosmoFlow
// architecture with one conv/pool block more per doubling of the edge (128: 5, 256: 6, 512: 7
// blocks) unless --conv-layers says otherwise.
//
// Memory per rank: the operating system's high-water mark of the process (VmHWM, reset with
// /proc/self/clear_refs before each configuration, with Halo's allocator cache emptied), and
// the peak of Halo's tensors alone (the host allocator's peak_bytes_in_use), and what the
// allocator held at its fullest (tensors plus its cache of freed blocks). Each is the largest
// over the configuration's ranks; RSS minus held is memory outside Halo's allocator
// (oneDNN's scratchpads and reorders, MPI, the libraries). The halo exchange time is the seconds the spatial
// layers spend waiting for their exchanges and gradient sums (exposed; exposed% = exchange /
// step); hidden: the halo exchange that ran behind the convolutions' interiors. On an oversubscribed launch
// (more ranks than cores) the ranks share cores: step times then measure the machine's
// sharing, not the method; memory and the exchange share stay meaningful.
//
// --memory-trace prints, on each configuration's first rank during its first step, Halo's
// tensor bytes in use after every layer's forward and backward: where the memory goes.
//
// Last line, for the largest edge and the largest rank count:
//   peak_mem_ratio=<that configuration's peak RSS per rank / the 1-rank run's> exposed_halo_pct=<x>
#include <algorithm>
#include <array>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "halo/dist/communicator.hpp"
#include "halo/dist/spatial_grid.hpp"
#include "halo/models/cosmoflow.hpp"
#include "halo/nn/losses.hpp"
#include "halo/nn/spatial.hpp"
#include "halo/optim/sgd.hpp"
#include "halo/tensor/allocator.hpp"
#include "halo/util/threads.hpp"
#include "halo/util/timer.hpp"
#include "args.hpp"
#include "inputs.hpp"

using namespace halo;

namespace {

using bench::arg;
using bench::opt_value;

std::vector<int64_t> int_list(const char* text, std::vector<int64_t> def) {
  if (!text) return def;
  std::vector<int64_t> r;
  std::string t(text);
  std::replace(t.begin(), t.end(), ',', ' ');
  std::istringstream in(t);
  for (int64_t v; in >> v;) r.push_back(v);
  return r.empty() ? def : r;
}

// s ranks as balanced a D x H x W grid as possible, the larger counts first (D first).
std::array<int, 3> balanced_grid(int s) {
  std::array<int, 3> p{1, 1, 1};
  for (int f = 2; s > 1;) {
    if (s % f != 0) {
      ++f;
      continue;
    }
    *std::min_element(p.begin(), p.end()) *= f;  // the smallest axis takes the factor
    s /= f;
  }
  std::sort(p.begin(), p.end(), std::greater<int>());
  return p;
}

// kB value of a /proc/self/status field (VmHWM, VmRSS), in bytes.
double proc_status_bytes(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::string key = std::string(field) + ":";
  while (std::getline(in, line))
    if (line.compare(0, key.size(), key) == 0) return std::atof(line.c_str() + key.size()) * 1024.0;
  return 0;
}

// Restarts the kernel's high-water mark of this process's resident memory (Linux >= 4.0).
bool reset_peak_rss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  return bool(out);
}

struct Result {
  int64_t size = 0;
  int ranks = 0;
  std::array<int, 3> grid{1, 1, 1};
  double step_s = 0, exchange_s = 0, rss = 0, tensors = 0, held = 0, hidden_s = 0;
};

}  // namespace

int main(int argc, char** argv) {
  if (bench::help(argc, argv,
                  "usage: mpiexec -n N halo-bench-spatial [--sizes 128,256] [--ranks 1,2,4] [--batch 1] [--steps 2]\n"
                  "                   [--warmup 1] [--base-filters 32] [--conv-layers L] [--threads T] [--memory-trace]\n"
                  "                   [--grid DxHxW]   (instead of the balanced grid for that many ranks)\n"
                  "  Memory per rank and step time of a CosmoFlow step split over 1, 2, 4, ... ranks, with the\n"
                  "  halo exchange's share of the step. Last line: peak_mem_ratio=<x> exposed_halo_pct=<y>.\n"))
    return 0;
  dist::MpiSession mpi(&argc, &argv);
  dist::Communicator world;
  const std::vector<int64_t> sizes = int_list(opt_value(argc, argv, "--sizes"), {128, 256});
  std::vector<int64_t> rank_counts = int_list(opt_value(argc, argv, "--ranks"), {1, 2, 4});
  rank_counts.erase(std::remove_if(rank_counts.begin(), rank_counts.end(),
                                   [&](int64_t s) { return s < 1 || s > world.size(); }),
                    rank_counts.end());
  // Largest grids first, and the one-rank run on the last rank: each configuration runs on
  // ranks whose earlier configurations were smaller than it (what a process keeps after a
  // configuration, the C library's heap above all, would otherwise count in the next one's
  // peak).
  std::sort(rank_counts.begin(), rank_counts.end(), std::greater<int64_t>());
  const int64_t batch = int64_t(arg(argc, argv, "--batch", 1));
  const int steps = std::max(1, int(arg(argc, argv, "--steps", 2)));
  const int warmup = int(arg(argc, argv, "--warmup", 1));
  const int64_t base_filters = int64_t(arg(argc, argv, "--base-filters", 32));
  const int conv_layers_opt = int(arg(argc, argv, "--conv-layers", 0));
  const bool memory_trace = bench::flag(argc, argv, "--memory-trace");
  // --grid 4x1x1: this grid instead of the balanced one for its rank count.
  std::array<int, 3> grid_override{0, 0, 0};
  if (const char* g = opt_value(argc, argv, "--grid")) grid_override = dist::parse_spatial_parts(g);
  const int override_ranks = grid_override[0] * grid_override[1] * grid_override[2];
  if (opt_value(argc, argv, "--threads")) set_num_threads(int(arg(argc, argv, "--threads", 1)));
  const bool root = world.rank() == 0;
  Allocator& host = allocator_for(Device::cpu());
  if (root)
    std::printf("halo-bench-spatial: %d ranks launched, %d threads per rank, batch %lld, %d timed steps\n"
                "%6s %5s %7s %10s %11s %9s %10s %14s %12s %11s %9s\n",
                world.size(), num_threads(), (long long)batch, steps, "edge", "ranks", "grid", "step [s]",
                "exchange [s]", "exposed%", "hidden [s]", "peak RSS [GiB]", "tensors [GiB]", "held [GiB]", "vs 1 rank");

  std::vector<Result> results;
  for (int64_t size : sizes) {
    int conv_layers = conv_layers_opt;
    if (conv_layers <= 0)  // 128 -> 5 blocks (4^3 at the head), one more per doubling
      for (int64_t e = size; e > 4 && e % 2 == 0; e /= 2) ++conv_layers;
    for (int64_t s64 : rank_counts) {
      const int s = int(s64);
      const bool mine = s == 1 ? world.rank() == world.size() - 1 : world.rank() < s;
      dist::Communicator group = world.split(mine ? 0 : 1, world.rank());
      Result r;
      r.size = size;
      r.ranks = s;
      r.grid = s == override_ranks ? grid_override : balanced_grid(s);
      double step = 0, exchange = 0, hidden = 0, rss = 0, tensors = 0, held = 0;
      if (mine) {
        host.empty_cache();
        host.reset_peak();
        reset_peak_rss();
        std::shared_ptr<dist::SpatialGrid> grid;
        if (s > 1) grid = std::make_shared<dist::SpatialGrid>(group, r.grid);
        models::CosmoFlowOptions mo;
        mo.input_size = size;
        mo.conv_layers = conv_layers;
        mo.base_filters = base_filters;
        mo.spatial = grid;
        nn::Model model = models::cosmoflow(mo);
        model.init(1);
        optim::SGDOptions so;
        so.lr = 1e-4;
        so.momentum = 0.9;
        optim::SGD sgd(model.parameters(), so);
        nn::MSELoss loss;
        Shape xs{batch, mo.in_channels};
        for (int a = 0; a < 3; ++a)
          xs.push_back(grid ? grid->block_range(a, size).size() : size);
        const Tensor x = bench::uniform_channels_last(xs, 11 + uint64_t(group.rank()));
        const Tensor y = Tensor::zeros({batch, mo.outputs});
        host.empty_cache();  // initialisation's temporaries, as train::Trainer drops them
        if (memory_trace && group.rank() == 0)
          model.set_layer_timer([&](const std::string& n, bool bwd, double) {
            const AllocatorStats st = host.stats();
            std::printf("  [%lld^3 on %d ranks] after %s %-10s tensors %.3f GiB (peak %.3f)\n", (long long)size, s,
                        bwd ? "backward" : "forward ", n.c_str(), double(st.bytes_in_use) / double(1 << 30),
                        double(st.peak_bytes_in_use) / double(1 << 30));
          });
        for (int k = 0; k < warmup + steps; ++k) {
          if (k == 1) model.set_layer_timer({});  // the first step's trace is enough
          group.barrier();
          nn::spatial_exchange_seconds(model, /*reset=*/true);
          const double t0 = now_seconds();
          model.zero_grad();
          loss.forward(model.forward(x), y);
          model.backward(loss.backward());
          sgd.step();
          const double t = now_seconds() - t0;
          if (k >= warmup) {
            step += t / steps;
            double behind = 0;
            exchange += nn::spatial_exchange_seconds(model, /*reset=*/false, &behind) / steps;
            hidden += behind / steps;
          }
        }
        rss = proc_status_bytes("VmHWM");
        const AllocatorStats st = host.stats();
        tensors = double(st.peak_bytes_in_use);
        held = double(st.bytes_in_use + st.bytes_cached);  // the cache never shrinks: its high-water mark
        // The slowest rank sets the step; the fullest sets the memory.
      }
      world.idle_barrier();  // the ranks outside the configuration leave it the cores
      {
        double v[6] = {step, exchange, rss, tensors, held, hidden};  // the others give 0
        MPI_Allreduce(MPI_IN_PLACE, v, 6, MPI_DOUBLE, MPI_MAX, world.comm());
        step = v[0], exchange = v[1], rss = v[2], tensors = v[3], held = v[4], hidden = v[5];
      }
      if (mine) host.empty_cache();
      r.step_s = step, r.exchange_s = exchange, r.rss = rss, r.tensors = tensors, r.held = held, r.hidden_s = hidden;
      results.push_back(r);
    }
    // One table row per configuration of this edge, fewest ranks first, against the
    // one-rank run (measured last).
    double one = 0;
    for (const auto& q : results)
      if (q.size == size && q.ranks == 1) one = q.rss;
    std::vector<Result> rows;
    for (const auto& q : results)
      if (q.size == size) rows.push_back(q);
    std::sort(rows.begin(), rows.end(), [](const Result& a, const Result& b) { return a.ranks < b.ranks; });
    const double gib = double(1 << 30);
    if (root)
      for (const auto& q : rows)
        std::printf("%6lld %5d %3dx%dx%d %10.3f %11.3f %8.1f%% %10.3f %14.2f %12.2f %11.2f %8.0f%%\n", (long long)size,
                    q.ranks, q.grid[0], q.grid[1], q.grid[2], q.step_s, q.exchange_s,
                    q.step_s > 0 ? 100 * q.exchange_s / q.step_s : 0.0, q.hidden_s, q.rss / gib, q.tensors / gib,
                    q.held / gib, one > 0 ? 100 * q.rss / one : 0.0);
    if (root) std::fflush(stdout);
  }
  if (root && !results.empty()) {
    // The largest edge at the largest rank count.
    Result last = results.front();
    for (const auto& q : results)
      if (q.size > last.size || (q.size == last.size && q.ranks > last.ranks)) last = q;
    double one = 0;
    for (const auto& q : results)
      if (q.size == last.size && q.ranks == 1) one = q.rss;
    std::printf("peak_mem_ratio=%.3f exposed_halo_pct=%.1f\n", one > 0 ? last.rss / one : 0.0,
                last.step_s > 0 ? 100 * last.exchange_s / last.step_s : 0.0);
  }
  return 0;
}
