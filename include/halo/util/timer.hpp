// Wall-clock timing: a stopwatch and named accumulators (compute, communication, I/O wait)
// that the trainer reports per epoch.
#pragma once
#include <chrono>
#include <map>
#include <string>

namespace halo {

inline double now_seconds() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

class Stopwatch {
 public:
  Stopwatch() : start_(now_seconds()) {}
  void reset() { start_ = now_seconds(); }
  double seconds() const { return now_seconds() - start_; }

 private:
  double start_;
};

/// Sums of seconds by category; `Scope` adds the time of a block.
class TimeAccumulator {
 public:
  void add(const std::string& what, double seconds) { totals_[what] += seconds; }
  double get(const std::string& what) const {
    auto it = totals_.find(what);
    return it == totals_.end() ? 0.0 : it->second;
  }
  void clear() { totals_.clear(); }
  const std::map<std::string, double>& totals() const { return totals_; }

  class Scope {
   public:
    Scope(TimeAccumulator& acc, std::string what) : acc_(acc), what_(std::move(what)) {}
    ~Scope() { acc_.add(what_, sw_.seconds()); }

   private:
    TimeAccumulator& acc_;
    std::string what_;
    Stopwatch sw_;
  };

 private:
  std::map<std::string, double> totals_;
};

}  // namespace halo
