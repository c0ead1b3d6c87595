// Which samples each rank reads in an epoch, and how many steps the epoch has.
//
// Every rank must run the same number of steps: each step ends in collectives (the gradient
// allreduce), so a rank with one batch more than the others posts an allreduce nobody
// matches (MPI_ERR_TRUNCATE, or memory corruption when it meets another collective). The
// sampler therefore decides the epoch's length from the global sample count n, the rank
// count P and the per-rank batch size b alone — never from a rank's own shard — with one of
// two policies, identical on every rank:
//
//  - pad (default), as PyTorch's DistributedSampler: the epoch's global order is extended
//    by wrapping around to its start until its length is a multiple of P, so every rank
//    gets ceil(n / P) samples (at most P - 1 samples are repeated, at most one per rank)
//    and ceil(ceil(n / P) / b) batches; the last batch may be smaller than b, but it is the
//    same size on every rank. A rank's padded samples are the last of its shard
//    (real_size() tells how many come first), so validation can leave them out and count
//    every real sample exactly once.
//  - drop_last: the global order is cut to a multiple of P * b, so every rank gets only
//    full batches, floor(n / (P b)) of them; at most P b - 1 samples (different ones each
//    epoch when shuffled) are skipped and none is read twice.
//
// Global mode (default): every epoch a permutation of all n samples drawn from (seed, epoch)
// with a counter-based RNG — identical on every rank without communication — and rank r
// takes positions r, r + P, r + 2P, ... of the (padded or cut) order.
//
// Local mode (staging): the shard is fixed, the one global mode gives for epoch 0, and each
// epoch only shuffles its real samples within it (from seed, epoch and rank; the padding
// stays last); this is what lets a rank stage its shard into memory or node-local disk
// once, as the MLPerf HPC submissions do. Its length is the global mode's.
//
// Validation: shuffle = false gives the identity order, sharded the same way.
#pragma once
#include <cstdint>
#include <vector>

namespace halo::data {

struct ShardOptions {
  uint64_t seed = 0;
  bool shuffle = true;
  /// Drop the remainder (to a multiple of ranks * batch_size) instead of padding by wrapping.
  bool drop_last = false;
  bool local_shuffle = false;  ///< fixed shard per rank, shuffled within (staging)
  /// Per-rank batch size: sets batches() and, with drop_last, what is cut. The DataLoader
  /// sets it from LoaderOptions::batch_size.
  int64_t batch_size = 1;
};

class ShardedSampler {
 public:
  ShardedSampler(int64_t n, int rank, int size, ShardOptions opt = {});

  /// The global order of epoch `epoch` (a permutation of 0..n-1; identity without shuffle).
  std::vector<int64_t> global_order(int64_t epoch) const;
  /// This rank's samples in epoch `epoch`, in the order they are read: real_size() real
  /// samples, then shard_size() - real_size() padding repeats.
  std::vector<int64_t> shard(int64_t epoch) const;
  /// Samples every rank reads per epoch: the same on every rank and every epoch.
  int64_t shard_size() const;
  /// How many of this rank's shard_size() samples are real (the rest repeat earlier ones).
  int64_t real_size() const;
  /// Batches (steps) per epoch: the same on every rank and every epoch.
  int64_t batches() const;
  /// Over all ranks, per epoch: samples read twice (pad) and samples skipped (drop_last).
  int64_t padded() const { return shard_size() * size_ - (opt_.drop_last ? shard_size() * size_ : n_); }
  int64_t dropped() const { return n_ - (opt_.drop_last ? shard_size() * size_ : n_); }
  int64_t size() const { return n_; }
  int rank() const { return rank_; }
  int ranks() const { return size_; }
  const ShardOptions& options() const { return opt_; }

 private:
  int64_t n_;
  int rank_, size_;
  ShardOptions opt_;
};

/// Fisher-Yates permutation of 0..n-1 from (seed, stream): a pure function of its arguments.
std::vector<int64_t> permutation(int64_t n, uint64_t seed, uint64_t stream);

}  // namespace halo::data
