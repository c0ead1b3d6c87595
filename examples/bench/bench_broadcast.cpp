// halo-bench-broadcast: a model's tensors broadcast from rank 0 (dist::broadcast_tensors), as
// the trainer does with parameters and buffers at start-up and with the BatchNorm buffers
// before every validation and checkpoint, against a reference: one MPI_Bcast of the same bytes
// in one buffer (one latency, then bandwidth: the floor for many small tensors; a large model
// can move faster in its many medium tensors than in one huge message, a ratio below 1).
//
//   mpirun -n N halo-bench-broadcast [--model deepcam|cosmoflow] [--reps 20]
//
// --reps times the buffers; the whole model is timed reps/4 times (at least once).
//
// deepcam: DeepLabv3+ at the MLPerf size (16 channels in, 3 classes); cosmoflow: 128^3 x 4.
// Each time is the median over the repetitions of the slowest rank's time, after a barrier.
// The last line is buffers_vs_one_bcast=<x> model_vs_one_bcast=<y> (time over the reference;
// "none" for a model without buffers).
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "halo/dist/communicator.hpp"
#include "halo/dist/model_sync.hpp"
#include "halo/models/cosmoflow.hpp"
#include "halo/models/deeplabv3.hpp"
#include "halo/util/timer.hpp"
#include "args.hpp"

using namespace halo;

namespace {

// Median over `reps` of the slowest rank's time of f(), in seconds.
template <class F>
double timed(const dist::Communicator& comm, int reps, F&& f) {
  f();  // warm-up: buffers allocated, connections made
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    comm.barrier();
    Stopwatch timer;
    f();
    double s = timer.seconds();
    MPI_Allreduce(MPI_IN_PLACE, &s, 1, MPI_DOUBLE, MPI_MAX, comm.comm());
    t.push_back(s);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

struct Result {
  size_t tensors = 0, bytes = 0;
  double seconds = 0, reference = 0;
};

Result measure(const dist::Communicator& comm, const std::vector<Tensor*>& ts, int reps) {
  Result r;
  r.tensors = ts.size();
  for (Tensor* t : ts) r.bytes += t->nbytes();
  if (ts.empty()) return r;  // a model without buffers (CosmoFlow has no BatchNorm)
  r.seconds = timed(comm, reps, [&] { dist::broadcast_tensors(comm, ts, 0); });
  std::vector<char> one(r.bytes);
  r.reference = timed(comm, reps, [&] { MPI_Bcast(one.data(), int(one.size()), MPI_BYTE, 0, comm.comm()); });
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  if (halo::bench::help(argc, argv,
                        "usage: mpirun -n N halo-bench-broadcast [--model deepcam|cosmoflow] [--reps 20]\n"
                        "  A model's buffers (--reps times), then its parameters and buffers (reps/4 times), broadcast from rank 0,\n"
                        "  against one MPI_Bcast of the same bytes. Last line: buffers_vs_one_bcast=<x> model_vs_one_bcast=<y>.\n"))
    return 0;
  dist::MpiSession mpi(&argc, &argv);
  dist::Communicator comm;
  const char* which = bench::opt_value(argc, argv, "--model");
  const std::string model_name = which ? which : "deepcam";
  const int reps = std::max(1, int(bench::arg(argc, argv, "--reps", 20)));
  if (model_name != "deepcam" && model_name != "cosmoflow") {
    if (comm.rank() == 0) std::fprintf(stderr, "halo-bench-broadcast: --model must be deepcam or cosmoflow, got '%s'\n", model_name.c_str());
    return 2;
  }
  nn::Model model = model_name == "deepcam" ? models::deeplabv3_plus({}) : models::cosmoflow({});
  model.init(1);

  std::vector<Tensor*> buffers, all;
  for (auto* p : model.parameters()) all.push_back(&p->value);
  for (auto* b : model.buffers()) {
    buffers.push_back(&b->value);
    all.push_back(&b->value);
  }
  Result b = measure(comm, buffers, reps);
  Result m = measure(comm, all, std::max(1, reps / 4));
  if (comm.rank() == 0) {
    std::printf("# %s on %d ranks; median of the slowest rank's time\n", model_name.c_str(), comm.size());
    auto ratio = [](const Result& r) {
      char buf[32] = "none";
      if (r.tensors) std::snprintf(buf, sizeof buf, "%.2f", r.seconds / r.reference);
      return std::string(buf);
    };
    auto line = [&](const char* what, const Result& r) {
      if (!r.tensors) return (void)std::printf("%-22s none\n", what);
      std::printf("%-22s %4zu tensors %9.2f MB %9.3f ms   one MPI_Bcast of the same bytes %9.3f ms   ratio %.2f\n", what,
                  r.tensors, r.bytes / 1e6, r.seconds * 1e3, r.reference * 1e3, r.seconds / r.reference);
    };
    line("buffers", b);
    line("parameters + buffers", m);
    std::printf("buffers_vs_one_bcast=%s model_vs_one_bcast=%s\n", ratio(b).c_str(), ratio(m).c_str());
  }
  return 0;
}
