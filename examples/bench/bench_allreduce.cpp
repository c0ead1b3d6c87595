// halo-bench-allreduce: the gradient synchroniser against one plain MPI_Allreduce, and
// the communication a CosmoFlow-sized training step leaves exposed.
//
//   mpirun -n 2 halo-bench-allreduce [--max-mib 256] [--iters 5] [--batch 4] [--gflops 150]
//                                    [--steps 5] [--bucket-mib 25] [--poll-us 20]
//
// Part 1, for sizes 4 KiB .. 256 MiB of f32 gradients (split into 4 MiB parameters):
// time, algorithm bandwidth (bytes / time) and bus bandwidth (algbw * 2(n-1)/n, as
// nccl-tests defines it) of GradientSynchronizer::wait after marking everything ready,
// and of MPI_Allreduce on one flat buffer.
// Part 2: CosmoFlow-64 parameter shapes (5 conv3d 32..512 filters, dense 4096-128-64-4)
// with a simulated forward and backward: each layer computes for flops / rate seconds,
// then announces its gradients, exactly as the Model's grad-ready hook does. The exposed
// communication is the time from the end of backward to the gradients being averaged.
// The last line is exposed_comm_pct=<x>.
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "halo/dist/grad_sync.hpp"
#include "halo/util/timer.hpp"

using namespace halo;

namespace {

double arg(int argc, char** argv, const char* name, double def) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return std::atof(argv[i + 1]);
  return def;
}

// Keeps the core busy for `seconds` with arithmetic on a small buffer, as a layer's
// kernel would (a sleep would leave the core to the progress thread and flatter it).
volatile float g_sink = 0;
void compute_for(double seconds, std::vector<float>& scratch) {
  double end = now_seconds() + seconds;
  float acc = 0;
  while (now_seconds() < end)
    for (size_t i = 0; i < scratch.size(); ++i) acc += scratch[i] = scratch[i] * 0.999f + 1e-3f;
  g_sink = acc;
}

struct Layer {
  std::string name;
  std::vector<Shape> shapes;
  double fwd_gflop_per_sample;
  std::vector<nn::Parameter> params;
};

std::vector<Layer> cosmoflow64() {
  std::vector<Layer> L;
  int64_t cin = 4, side = 64;
  for (int i = 0; i < 5; ++i) {
    int64_t cout = int64_t(32) << i;
    double gf = 2.0 * double(side * side * side) * double(cin * cout * 27) / 1e9;
    L.push_back({"conv" + std::to_string(i + 1), {{cout, cin, 3, 3, 3}, {cout}}, gf, {}});
    cin = cout;
    side /= 2;
  }
  int64_t feat = 512 * side * side * side;  // 512 * 2^3
  int64_t dims[4] = {feat, 128, 64, 4};
  for (int i = 0; i < 3; ++i)
    L.push_back({"fc" + std::to_string(i + 1), {{dims[i + 1], dims[i]}, {dims[i + 1]}},
                 2.0 * double(dims[i] * dims[i + 1]) / 1e9, {}});
  for (auto& l : L)
    for (size_t k = 0; k < l.shapes.size(); ++k) {
      nn::Parameter p;
      p.name = l.name + (k == 0 ? "/weight" : "/bias");
      p.value = Tensor::zeros(l.shapes[k]);
      p.grad = Tensor::full(l.shapes[k], 0.5);
      l.params.push_back(std::move(p));
    }
  return L;
}

}  // namespace

int main(int argc, char** argv) {
  dist::MpiSession mpi(&argc, &argv);
  dist::Communicator comm;
  const int n = comm.size();
  const bool root = comm.rank() == 0;
  const double max_mib = arg(argc, argv, "--max-mib", 256);
  const int iters = int(arg(argc, argv, "--iters", 5));
  const double poll_us = arg(argc, argv, "--poll-us", 20);

  if (root) {
    std::printf("# %d ranks, MPI thread level %d; bus bandwidth = algbw * 2(n-1)/n\n", n, comm.thread_level());
    std::printf("%12s %12s %10s %10s %12s %10s %10s\n", "bytes", "sync_us", "algbw_GB/s", "busbw_GB/s", "flat_us",
                "algbw_GB/s", "busbw_GB/s");
  }
  const double bus = n > 1 ? 2.0 * (n - 1) / n : 1.0;
  for (size_t bytes = 4096; bytes <= size_t(max_mib * 1048576.0); bytes *= 4) {
    size_t elems = bytes / 4;
    const size_t chunk = size_t(1) << 20;  // 4 MiB parameters
    std::vector<nn::Parameter> params;
    for (size_t off = 0; off < elems; off += chunk) {
      nn::Parameter p;
      p.name = "p" + std::to_string(params.size());
      int64_t m = int64_t(std::min(chunk, elems - off));
      p.value = Tensor::zeros({m});
      p.grad = Tensor::full({m}, 1.0);
      params.push_back(std::move(p));
    }
    std::vector<nn::Parameter*> ptrs;
    for (auto& p : params) ptrs.push_back(&p);
    dist::GradSyncOptions opt;
    opt.poll_interval_us = poll_us;
    dist::GradientSynchronizer sync(comm, ptrs, opt);
    std::vector<float> flat(elems, 1.0f);
    int reps = bytes >= (size_t(64) << 20) ? std::max(2, iters / 2) : iters * 4;
    double t_sync = 1e30, t_flat = 1e30;
    for (int it = 0; it <= reps; ++it) {  // best of reps, after one warm-up
      MPI_Barrier(comm.comm());
      double t0 = now_seconds();
      sync.mark_ready(ptrs);
      sync.wait();
      double t1 = now_seconds();
      MPI_Barrier(comm.comm());
      double t2 = now_seconds();
      MPI_Allreduce(MPI_IN_PLACE, flat.data(), int(elems), MPI_FLOAT, MPI_SUM, comm.comm());
      double t3 = now_seconds();
      if (it > 0) {
        t_sync = std::min(t_sync, t1 - t0);
        t_flat = std::min(t_flat, t3 - t2);
      }
    }
    double both[2] = {t_sync, t_flat};  // the slowest rank defines the time
    MPI_Allreduce(MPI_IN_PLACE, both, 2, MPI_DOUBLE, MPI_MAX, comm.comm());
    if (root)
      std::printf("%12zu %12.1f %10.3f %10.3f %12.1f %10.3f %10.3f\n", bytes, both[0] * 1e6, bytes / both[0] / 1e9,
                  bytes / both[0] / 1e9 * bus, both[1] * 1e6, bytes / both[1] / 1e9, bytes / both[1] / 1e9 * bus);
  }

  // ---- Part 2: a CosmoFlow-64 step with simulated compute ----
  const double batch = arg(argc, argv, "--batch", 4);
  const double gflops = arg(argc, argv, "--gflops", 150);  // one core's conv3d rate
  const int steps = int(arg(argc, argv, "--steps", 5));
  auto layers = cosmoflow64();
  std::vector<nn::Parameter*> all;
  double fwd_gflop = 0;
  size_t pbytes = 0;
  for (auto& l : layers) {
    fwd_gflop += l.fwd_gflop_per_sample * batch;
    for (auto& p : l.params) {
      all.push_back(&p);
      pbytes += p.value.nbytes();
    }
  }
  dist::GradSyncOptions opt;
  opt.poll_interval_us = poll_us;
  if (arg(argc, argv, "--bucket-mib", 0) > 0) opt.bucket_bytes = size_t(arg(argc, argv, "--bucket-mib", 0) * 1048576.0);
  dist::GradientSynchronizer sync(comm, all, opt);
  std::vector<float> scratch(4096, 1.0f);
  double sum_step = 0, sum_exposed = 0, sum_comm_alone = 0;
  for (int s = 0; s <= steps; ++s) {
    MPI_Barrier(comm.comm());
    double t0 = now_seconds();
    compute_for(fwd_gflop / gflops, scratch);  // forward
    for (size_t i = layers.size(); i-- > 0;) {  // backward: about twice the forward
      compute_for(2.0 * layers[i].fwd_gflop_per_sample * batch / gflops, scratch);
      std::vector<nn::Parameter*> ready;
      for (auto& p : layers[i].params) ready.push_back(&p);
      sync.mark_ready(ready);
    }
    double t_bwd = now_seconds();
    sync.wait();
    double t_end = now_seconds();
    // The same allreduces with nothing to hide behind, for reference.
    MPI_Barrier(comm.comm());
    double c0 = now_seconds();
    sync.mark_ready(all);
    sync.wait();
    double c1 = now_seconds();
    if (s > 0) {
      sum_step += t_end - t0;
      sum_exposed += t_end - t_bwd;
      sum_comm_alone += c1 - c0;
    }
  }
  double v[3] = {sum_step / steps, sum_exposed / steps, sum_comm_alone / steps};
  MPI_Allreduce(MPI_IN_PLACE, v, 3, MPI_DOUBLE, MPI_MAX, comm.comm());
  double pct = 100.0 * v[1] / v[0];
  if (root) {
    std::printf("# CosmoFlow-64 (simulated compute at %.0f GFLOP/s per rank, local batch %.0f): %zu parameters, "
                "%.1f MB of gradients in %zu buckets of at most %.1f MB\n",
                gflops, batch, all.size(), pbytes / 1e6, sync.buckets().size(), opt.bucket_bytes / 1e6);
    std::printf("# compute is simulated (busy loops of each layer's FLOPs at the given rate); the parameter shapes "
                "and the order of grad-ready events are CosmoFlow-64's\n");
    std::printf("step_s=%.4f exposed_comm_s=%.5f allreduce_alone_s=%.5f hidden_pct=%.1f\n", v[0], v[1], v[2],
                v[2] > 0 ? 100.0 * (1.0 - v[1] / v[2]) : 0.0);
    std::printf("exposed_comm_pct=%.2f\n", pct);
  }
  return 0;
}
