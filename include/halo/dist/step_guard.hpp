// Step guard: a check, before every training step's first collective, that every rank is
// at the same step and about to post the same gradient collectives.
//
// MPI matches collectives by order only. If one rank runs a step more than another (an
// epoch that is longer on one rank), its gradient allreduce meets whatever collective the
// other rank posts next — a metric reduction of a different size — and MPI reports
// MPI_ERR_TRUNCATE or silently writes past a buffer. The guard turns that into an error on
// every rank that names the ranks and what differs, e.g.
//
//   train: the ranks are not at the same training step, so their next collectives would
//   not match (...): rank 0: at step 5 of epoch 1 (its epoch has 5 steps, 3 gradient
//   buckets of 7241 elements, ...); rank 1: done with epoch 1 after 4 steps (its epoch has
//   4 steps, ...); they differ in: steps per epoch, has a batch. ...
//
// The trainer calls check() once per step (after the batch is fetched, before forward) and
// once at the end of every epoch (has_batch = false), so a rank that runs out of batches
// meets the others in the same fixed-size collective rather than in a mismatched one.
// Cost: one MPI_Allreduce of 14 uint64 (112 bytes, min and max in one call) per step; on a
// mismatch, one MPI_Allgather of the tags to name the ranks. docs/distributed.md has numbers.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "halo/dist/communicator.hpp"

namespace halo::dist {

/// Where a rank is and what its next step will communicate.
struct StepTag {
  int64_t epoch = 0;            ///< 0-based (reported 1-based, as the trainer's logs do)
  int64_t step = 0;             ///< steps already taken in this epoch
  int64_t steps_per_epoch = 0;  ///< the rank's loader's batches per epoch
  bool has_batch = true;        ///< false: the rank's epoch is over (no step follows)
  int64_t buckets = 0;          ///< gradient buckets the step allreduces
  int64_t elements = 0;         ///< their elements in total
  uint64_t layout = 0;          ///< GradientSynchronizer::layout_hash()
};

/// The error text for tags that differ (one per rank, index = rank): ranks grouped by
/// identical tag, and the fields that differ. A pure function so it is tested directly.
std::string describe_step_mismatch(const std::vector<StepTag>& per_rank, const std::string& who);

class StepGuard {
 public:
  /// `who` names the run in the error (TrainerOptions::name).
  explicit StepGuard(Communicator comm, std::string who = "train");
  /// Collective: returns when every rank passed the same tag, else throws DistError (on
  /// every rank) with describe_step_mismatch's text.
  void check(const StepTag& mine);
  /// Calls so far and the seconds they took (including waiting for the slowest rank).
  int64_t checks() const { return checks_; }
  double seconds() const { return seconds_; }

 private:
  Communicator comm_;
  std::string who_;
  int64_t checks_ = 0;
  double seconds_ = 0;
};

}  // namespace halo::dist
