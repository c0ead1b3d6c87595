#include "halo/data/sampler.hpp"

#include <numeric>

#include "halo/util/error.hpp"
#include "halo/util/random.hpp"

namespace halo::data {

std::vector<int64_t> permutation(int64_t n, uint64_t seed, uint64_t stream) {
  std::vector<int64_t> p(size_t(std::max<int64_t>(n, 0)));
  std::iota(p.begin(), p.end(), int64_t(0));
  CounterRng rng(seed, stream);
  for (int64_t i = n - 1; i > 0; --i) {
    // multiply-shift maps 64 random bits onto [0, i] without a modulo's bias worth noting
    uint64_t j = uint64_t((unsigned __int128)rng.bits(uint64_t(i)) * uint64_t(i + 1) >> 64);
    std::swap(p[size_t(i)], p[size_t(j)]);
  }
  return p;
}

ShardedSampler::ShardedSampler(int64_t n, int rank, int size, ShardOptions opt)
    : n_(n), rank_(rank), size_(size), opt_(opt) {
  HALO_CHECK_T(ConfigError, size >= 1 && rank >= 0 && rank < size, "sampler: rank ", rank, " of ", size);
  HALO_CHECK_T(ConfigError, n >= 0, "sampler: ", n, " samples");
  HALO_CHECK_T(ConfigError, opt_.batch_size >= 1, "sampler: batch size must be >= 1, got ", opt_.batch_size);
}

std::vector<int64_t> ShardedSampler::global_order(int64_t epoch) const {
  if (!opt_.shuffle) {
    std::vector<int64_t> p(static_cast<size_t>(n_));
    std::iota(p.begin(), p.end(), int64_t(0));
    return p;
  }
  // even streams: global orders; odd streams (mixed with the rank): local shuffles
  return permutation(n_, opt_.seed, uint64_t(epoch) * 2);
}

// Functions of (n, P, b, policy) only, never of the rank: this is what keeps every rank's
// step count equal.
int64_t ShardedSampler::shard_size() const {
  if (opt_.drop_last) return n_ / (int64_t(size_) * opt_.batch_size) * opt_.batch_size;
  return (n_ + size_ - 1) / size_;
}

int64_t ShardedSampler::batches() const { return (shard_size() + opt_.batch_size - 1) / opt_.batch_size; }

int64_t ShardedSampler::real_size() const {
  if (opt_.drop_last) return shard_size();
  // positions r, r + P, ... of the padded order that fall before n are real
  return n_ / size_ + (rank_ < n_ % size_ ? 1 : 0);
}

std::vector<int64_t> ShardedSampler::shard(int64_t epoch) const {
  std::vector<int64_t> order = global_order(opt_.local_shuffle ? 0 : epoch);
  const int64_t per_rank = shard_size();
  std::vector<int64_t> out;
  out.reserve(size_t(per_rank));
  // Position k of the padded order is order[k mod n]: the padding repeats the start of the
  // epoch's order (several times over only when n < P).
  for (int64_t j = 0; j < per_rank; ++j) out.push_back(order[size_t((rank_ + j * size_) % n_)]);
  if (opt_.local_shuffle && opt_.shuffle && epoch > 0) {
    // Only the real samples move: the padding stays last, where real_size() says it is.
    const int64_t real = real_size();
    auto p = permutation(real, opt_.seed, (uint64_t(epoch) * 2 + 1) ^ (uint64_t(rank_) << 32));
    std::vector<int64_t> shuffled(out);
    for (size_t k = 0; k < size_t(real); ++k) shuffled[k] = out[size_t(p[k])];
    out.swap(shuffled);
  }
  return out;
}

}  // namespace halo::data
