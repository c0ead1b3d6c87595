// halo-bench-allreduce: the gradient synchroniser against one plain MPI_Allreduce, and
// the communication a CosmoFlow-sized training step leaves exposed.
//
//   mpirun -n 2 halo-bench-allreduce [--max-mib 256] [--iters 5] [--batch 4]
//                                    [--steps 5] [--size 64] [--bucket-mib 25] [--poll-us 20] [--median]
//
// Part 1, for sizes 4 KiB .. 256 MiB of f32 gradients (split into 4 MiB parameters; the best
// of the repetitions, or with --median their median):
// time, algorithm bandwidth (bytes / time) and bus bandwidth (algbw * 2(n-1)/n, as
// nccl-tests defines it) of GradientSynchronizer::wait after marking everything ready,
// and of MPI_Allreduce on one flat buffer.
// Part 2: a real CosmoFlow-64 training step (models::cosmoflow, input 64^3, local batch
// --batch, MSE loss, SGD) with the synchroniser attached to the model's grad-ready hooks.
// The exposed communication is the time from the end of backward to the gradients being
// averaged (sync.wait()), as a fraction of the whole step.
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
#include "halo/models/cosmoflow.hpp"
#include "halo/nn/losses.hpp"
#include "halo/optim/sgd.hpp"
#include "halo/util/threads.hpp"
#include "halo/util/timer.hpp"
#include "args.hpp"
#include "inputs.hpp"

using namespace halo;

namespace {

double arg(int argc, char** argv, const char* name, double def) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return std::atof(argv[i + 1]);
  return def;
}

double pick(std::vector<double> v, bool median) {
  std::sort(v.begin(), v.end());
  return median ? v[v.size() / 2] : v.front();
}

}  // namespace

int main(int argc, char** argv) {
  if (halo::bench::help(argc, argv, "usage: mpirun -n N halo-bench-allreduce [--max-mib 256] [--iters 5] [--batch 4] [--steps 5] [--size 64]\n                    [--bucket-mib 25] [--poll-us 20] [--median]\n  The gradient synchroniser vs one MPI_Allreduce (4 KiB..max; best of the repetitions, or their median), then the exposed communication of a\n  CosmoFlow step. Last line: exposed_comm_pct=<x>.\n")) return 0;
  dist::MpiSession mpi(&argc, &argv);
  dist::Communicator comm;
  const int n = comm.size();
  const bool root = comm.rank() == 0;
  const double max_mib = arg(argc, argv, "--max-mib", 256);
  const int iters = int(arg(argc, argv, "--iters", 5));
  const double poll_us = arg(argc, argv, "--poll-us", 20);
  const bool median = halo::bench::flag(argc, argv, "--median");

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
    std::vector<double> ts_sync, ts_flat;
    for (int it = 0; it <= reps; ++it) {  // after one warm-up
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
        ts_sync.push_back(t1 - t0);
        ts_flat.push_back(t3 - t2);
      }
    }
    // Best of the repetitions by default; the median (--median) where the network's speed
    // varies from one transfer to the next (TCP), which is what a training step meets.
    double both[2] = {pick(ts_sync, median), pick(ts_flat, median)};  // the slowest rank defines the time
    MPI_Allreduce(MPI_IN_PLACE, both, 2, MPI_DOUBLE, MPI_MAX, comm.comm());
    if (root)
      std::printf("%12zu %12.1f %10.3f %10.3f %12.1f %10.3f %10.3f\n", bytes, both[0] * 1e6, bytes / both[0] / 1e9,
                  bytes / both[0] / 1e9 * bus, both[1] * 1e6, bytes / both[1] / 1e9, bytes / both[1] / 1e9 * bus);
  }

  // ---- Part 2: a real CosmoFlow step with the synchroniser on the grad-ready hooks ----
  const int64_t batch = int64_t(arg(argc, argv, "--batch", 4));
  const int64_t size = int64_t(arg(argc, argv, "--size", 64));
  const int steps = int(arg(argc, argv, "--steps", 5));
  models::CosmoFlowOptions mo;
  mo.input_size = size;
  mo.dropout_seed = uint64_t(comm.rank());
  nn::Model model = models::cosmoflow(mo);
  model.init(1);
  auto params = model.parameters();
  size_t pbytes = 0;
  for (auto* p : params) pbytes += p->value.nbytes();
  dist::GradSyncOptions opt;
  opt.poll_interval_us = poll_us;
  if (arg(argc, argv, "--bucket-mib", 0) > 0) opt.bucket_bytes = size_t(arg(argc, argv, "--bucket-mib", 0) * 1048576.0);
  dist::GradientSynchronizer sync(comm, params, opt);
  sync.attach(model);
  optim::SGDOptions so;
  so.lr = 1e-4;
  so.momentum = 0.9;
  optim::SGD sgd(params, so);
  nn::MSELoss loss;
  const Tensor x = bench::uniform_channels_last({batch, 4, size, size, size}, uint64_t(comm.rank()) + 7);
  Tensor y = Tensor::zeros({batch, 4});
  double sum_step = 0, sum_bwd = 0, sum_exposed = 0, sum_comm_alone = 0;
  for (int s = 0; s <= steps; ++s) {  // step 0 warms up plans and the allocator
    MPI_Barrier(comm.comm());
    double t0 = now_seconds();
    model.zero_grad();
    loss.forward(model.forward(x), y);
    double t_fwd = now_seconds();
    model.backward(loss.backward());
    double t_bwd = now_seconds();
    sync.wait();
    double t_wait = now_seconds();
    sgd.step();
    double t_end = now_seconds();
    // The same allreduces with nothing to hide behind, for reference.
    MPI_Barrier(comm.comm());
    double c0 = now_seconds();
    sync.mark_ready(params);
    sync.wait();
    double c1 = now_seconds();
    if (s > 0) {
      sum_step += t_end - t0;
      sum_bwd += t_bwd - t_fwd;
      sum_exposed += t_wait - t_bwd;
      sum_comm_alone += c1 - c0;
    }
  }
  double v[4] = {sum_step / steps, sum_exposed / steps, sum_comm_alone / steps, sum_bwd / steps};
  MPI_Allreduce(MPI_IN_PLACE, v, 4, MPI_DOUBLE, MPI_MAX, comm.comm());
  double pct = 100.0 * v[1] / v[0];
  if (root) {
    std::printf("# CosmoFlow-%lld, real layers, %d ranks x %d threads, local batch %lld: %zu parameters, %.1f MB of "
                "gradients in %zu buckets (first %.1f MB, then at most %.1f MB)\n",
                (long long)size, n, num_threads(), (long long)batch, params.size(), pbytes / 1e6,
                sync.buckets().size(), opt.first_bucket_bytes / 1e6, opt.bucket_bytes / 1e6);
    std::printf("step_s=%.4f backward_s=%.4f exposed_comm_s=%.5f allreduce_alone_s=%.5f hidden_pct=%.1f\n", v[0], v[3],
                v[1], v[2], v[2] > 0 ? 100.0 * (1.0 - v[1] / v[2]) : 0.0);
    std::printf("exposed_comm_pct=%.2f\n", pct);
  }
  return 0;
}
