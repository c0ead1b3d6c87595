// The communicator Halo trains over. Halo is linked into HPC codes that may already have
// initialised MPI, and may be handed a sub-communicator of the application (an ensemble of
// trainers), so neither MPI_Init nor MPI_COMM_WORLD is assumed:
//
//   halo::dist::MpiSession mpi(&argc, &argv);      // initialises MPI unless the host did
//   halo::dist::Communicator comm(MPI_COMM_WORLD);  // or any communicator of the application
//
// A Communicator duplicates the communicator it is given, so Halo's messages never match
// the application's, and owns a stall watchdog (see watchdog.hpp) that every collective
// Halo makes on it reports to. Copies share the same duplicate and watchdog.
#pragma once
#include <mpi.h>

#include <memory>
#include <string>

#include "halo/dist/watchdog.hpp"

namespace halo::dist {

/// Initialises MPI (asking for MPI_THREAD_MULTIPLE, which the progress and watchdog threads
/// need) unless it is already initialised, and finalises it on destruction only if it
/// initialised it. Safe to create when the host application owns MPI.
class MpiSession {
 public:
  MpiSession(int* argc = nullptr, char*** argv = nullptr, int required = MPI_THREAD_MULTIPLE);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  /// True when this object called MPI_Init_thread (and will call MPI_Finalize).
  bool owns_mpi() const { return owns_; }
  /// The thread level MPI provides (MPI_THREAD_SINGLE ... MPI_THREAD_MULTIPLE).
  int thread_level() const;

 private:
  bool owns_ = false;
};

struct CommunicatorOptions {
  /// A Halo collective waiting longer than this reports the missing ranks and aborts the job.
  double stall_timeout_s = 60.0;
  /// How often the watchdog looks (seconds); also bounds how fast it answers other ranks.
  double watchdog_poll_s = 0.02;
};

class Communicator {
 public:
  /// Duplicates `comm` (collective over it). MPI must be initialised (see MpiSession).
  explicit Communicator(MPI_Comm comm = MPI_COMM_WORLD, CommunicatorOptions options = {});

  int rank() const;
  int size() const;
  /// Rank and number of ranks on this node (MPI_Comm_split_type with MPI_COMM_TYPE_SHARED).
  int local_rank() const;
  int local_size() const;
  /// Nodes the ranks span (the ranks first on their node, counted at construction).
  int node_count() const;
  /// Halo's private duplicate: use it for Halo traffic only.
  MPI_Comm comm() const;
  /// MPI's thread level; below MPI_THREAD_MULTIPLE the synchroniser progresses inline and
  /// the watchdog reports only what its own rank knows.
  int thread_level() const;
  bool thread_multiple() const { return thread_level() >= MPI_THREAD_MULTIPLE; }

  /// A new communicator of the ranks with the same `color`, ordered by `key` (collective).
  Communicator split(int color, int key) const;

  Watchdog& watchdog() const;
  void set_stall_timeout(double seconds) const;

  /// A barrier the watchdog watches.
  void barrier(const std::string& what = "barrier") const;
  /// A barrier whose waiting ranks sleep between polls instead of spinning in MPI, for ranks
  /// that wait while others are timed on the same cores (benchmarks, scaling studies). Not
  /// watched: such waits are as long as the measurement.
  void idle_barrier() const;
  /// Sum-allreduce in place, watched; `what` names it in a stall report.
  void allreduce_sum(double* values, size_t n, const std::string& what) const;
  void allreduce_sum(int64_t* values, size_t n, const std::string& what) const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace halo::dist
