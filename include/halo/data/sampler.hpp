// Which samples each rank reads in an epoch.
//
// Global mode (default): every epoch a permutation of all n samples drawn from (seed, epoch)
// with a counter-based RNG — identical on every rank without communication — and rank r
// takes positions r, r + P, r + 2P, ... of it. Shards are disjoint and together hold every
// sample exactly once, whatever the rank count P; they differ in length by at most one.
// With drop_last the permutation is cut to a multiple of P first, so all ranks get exactly
// floor(n / P) samples and at most P - 1 samples (different ones each epoch) are skipped.
//
// Local mode (staging): the shard is fixed, the one global mode gives for epoch 0, and each
// epoch only shuffles within it (from seed, epoch and rank); this is what lets a rank stage
// its shard into memory or node-local disk once, as the MLPerf HPC submissions do.
//
// Validation: shuffle = false gives the identity order, sharded the same way.
#pragma once
#include <cstdint>
#include <vector>

namespace halo::data {

struct ShardOptions {
  uint64_t seed = 0;
  bool shuffle = true;
  bool drop_last = false;
  bool local_shuffle = false;  ///< fixed shard per rank, shuffled within (staging)
};

class ShardedSampler {
 public:
  ShardedSampler(int64_t n, int rank, int size, ShardOptions opt = {});

  /// The global order of epoch `epoch` (a permutation of 0..n-1; identity without shuffle).
  std::vector<int64_t> global_order(int64_t epoch) const;
  /// This rank's samples in epoch `epoch`, in the order they are read.
  std::vector<int64_t> shard(int64_t epoch) const;
  /// Samples this rank reads per epoch (the same every epoch).
  int64_t shard_size() const;
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
