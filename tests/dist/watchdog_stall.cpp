// A job in which the last rank stops calling collectives: the others wait in a gradient
// allreduce. The watchdog (limit 2 s) must report the missing rank and abort the job with a
// non-zero exit; tests/dist/CMakeLists.txt checks the exit code, the time and the report.
// With --stop-rank R, rank R is the faulty one and stops itself with SIGSTOP (as a debugger,
// a ^Z or a swapping node would): its watchdog thread stops too, so it cannot answer, and
// when R is 0 another rank must write the report.
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "halo/dist/grad_sync.hpp"
#include "halo/nn/model.hpp"
#include "halo/tensor/tensor.hpp"

int main(int argc, char** argv) {
  halo::dist::MpiSession mpi(&argc, &argv);
  halo::dist::CommunicatorOptions copt;
  copt.stall_timeout_s = 2.0;
  halo::dist::Communicator comm(MPI_COMM_WORLD, copt);

  halo::nn::Parameter p;
  p.name = "dense/weight";
  p.value = halo::Tensor::zeros({64, 64});
  p.grad = halo::Tensor::full({64, 64}, 1.0);
  halo::dist::GradientSynchronizer sync(comm, {&p});
  sync.mark_ready({&p});
  if (!sync.wait()) return 10;
  comm.barrier("step 1 done");  // every rank gets this far

  int stop_rank = -1;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--stop-rank") == 0) stop_rank = std::atoi(argv[i + 1]);
  if (stop_rank == comm.rank()) {
    std::fprintf(stderr, "rank %d: stopping itself (SIGSTOP)\n", comm.rank());
    std::fflush(stderr);
    raise(SIGSTOP);
    std::fprintf(stderr, "rank %d: continued (the launcher ends a job with SIGCONT, then SIGTERM)\n", comm.rank());
    return 0;
  }
  if (stop_rank < 0 && comm.rank() == comm.size() - 1) {
    // The faulty rank: stuck (a deadlock in user code, a hung file system, ...).
    std::this_thread::sleep_for(std::chrono::seconds(60));
    std::fprintf(stderr, "rank %d: the watchdog did not end the job\n", comm.rank());
    return 0;
  }
  sync.mark_ready({&p});
  sync.wait();  // never completes: the faulty rank does not join
  std::fprintf(stderr, "rank %d: the allreduce completed without the faulty rank\n", comm.rank());
  return 0;
}
