// Metrics reduced across ranks. Each rank adds sums and counts for its shard; the
// reduction adds both over ranks, so a mean is exact even when shards are uneven
// (a mean of per-rank means would not be).
#pragma once
#include <map>
#include <string>

#include "halo/dist/communicator.hpp"

namespace halo::dist {

class MetricReducer {
 public:
  /// Adds `sum` over `count` samples to metric `name` (e.g. add("loss", loss*b, b)).
  void add(const std::string& name, double sum, double count = 1.0);
  /// Sums every metric's sum and count over the communicator (collective; every rank must
  /// hold the same metric names, else DistError on every rank) and returns the global means.
  std::map<std::string, double> reduce_means(const Communicator& comm) const;
  /// Global sums and counts of the last reduce.
  struct Total { double sum = 0, count = 0; };
  std::map<std::string, Total> reduce_totals(const Communicator& comm) const;
  void clear() { local_.clear(); }
  const std::map<std::string, Total>& local() const { return local_; }

 private:
  std::map<std::string, Total> local_;
};

}  // namespace halo::dist
