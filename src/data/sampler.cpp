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

int64_t ShardedSampler::shard_size() const {
  if (opt_.drop_last) return n_ / size_;
  return n_ / size_ + (rank_ < n_ % size_ ? 1 : 0);
}

std::vector<int64_t> ShardedSampler::shard(int64_t epoch) const {
  std::vector<int64_t> order = global_order(opt_.local_shuffle ? 0 : epoch);
  int64_t used = opt_.drop_last ? (n_ / size_) * size_ : n_;
  std::vector<int64_t> out;
  out.reserve(size_t(shard_size()));
  for (int64_t k = rank_; k < used; k += size_) out.push_back(order[size_t(k)]);
  if (opt_.local_shuffle && opt_.shuffle && epoch > 0) {
    auto p = permutation(int64_t(out.size()), opt_.seed, (uint64_t(epoch) * 2 + 1) ^ (uint64_t(rank_) << 32));
    std::vector<int64_t> shuffled(out.size());
    for (size_t k = 0; k < out.size(); ++k) shuffled[k] = out[size_t(p[k])];
    out.swap(shuffled);
  }
  return out;
}

}  // namespace halo::data
