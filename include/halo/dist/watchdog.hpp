// Stall watchdog: a collective that waits longer than a limit must not hang a job of
// thousands of nodes silently. Every Halo collective on a communicator is announced
// (`enter`) and retired (`leave`); they get sequence numbers 1, 2, ... in the same order
// on every rank, because MPI requires collectives to be called in the same order.
//
// A watchdog thread per communicator looks at the oldest collective in progress. When it
// has waited longer than the limit, the rank tells the communicator's rank 0, whose
// watchdog thread asks every rank for its state: the ranks whose count of entered
// collectives is below the waiting one's number have not joined it, and so have those that
// do not answer (stopped or dead). Rank 0 prints which operation waits, on which ranks,
// which ranks are missing and what they last did, then calls MPI_Abort so the job exits
// non-zero instead of hanging. When rank 0 is itself the stalled rank, ranks 1..4 take its
// place in turn after a few seconds. The exchange runs on a
// private duplicate communicator and needs MPI_THREAD_MULTIPLE; without it, each rank
// prints what it knows and aborts.
#pragma once
#include <mpi.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace halo::dist {

/// What one rank says about itself when asked (fixed size: sent as bytes).
struct RankStatus {
  int32_t rank = -1;
  int32_t responded = 0;      ///< 0 when the rank did not answer in time
  int64_t entered = 0;        ///< collectives entered so far
  int64_t oldest_seq = 0;     ///< oldest collective in progress (0: none)
  double oldest_age_s = 0;    ///< how long it has waited
  double idle_s = 0;          ///< seconds since it last entered or left a collective
  char oldest_name[120] = {};
  char last_name[120] = {};   ///< the last collective it entered
};

/// The collective that waited too long.
struct StallInfo {
  int32_t rank = -1;          ///< the rank that noticed
  int64_t seq = 0;
  double waited_s = 0;
  char name[120] = {};
};

/// The report rank 0 prints; a pure function so it can be tested without aborting.
/// `comm_size` (-1: ranks.size()) is the communicator's size; fewer `ranks` than that means
/// the reporting rank could not ask the others. Ranks that did not answer count as not joined.
std::string format_stall_report(const StallInfo& stall, const std::vector<RankStatus>& ranks,
                                double timeout_s, int comm_size = -1);
/// "0-3,5,7-9": compact rank lists for jobs of thousands of ranks.
std::string format_rank_list(const std::vector<int>& ranks);

class Watchdog {
 public:
  /// `comm` must be a private communicator (the watchdog sends and probes on it).
  /// `use_mpi`: whether the watchdog thread may call MPI (MPI_THREAD_MULTIPLE).
  Watchdog(MPI_Comm comm, bool use_mpi, double timeout_s, double poll_s);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  /// Announces a collective; returns its sequence number.
  int64_t enter(const std::string& what);
  /// Retires it (any thread).
  void leave(int64_t seq);
  /// RAII form of enter/leave.
  class Guard {
   public:
    Guard(Watchdog& w, const std::string& what) : w_(&w), seq_(w.enter(what)) {}
    ~Guard() { if (w_) w_->leave(seq_); }
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;

   private:
    Watchdog* w_;
    int64_t seq_;
  };

  void set_timeout(double seconds);
  double timeout() const;
  int64_t entered() const;
  RankStatus status() const;
  /// Stops the thread (idempotent); called before MPI_Finalize.
  void stop();

 private:
  // The thread, its lock and the table of collectives in progress live in
  // src/dist/watchdog.cpp.
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace halo::dist
