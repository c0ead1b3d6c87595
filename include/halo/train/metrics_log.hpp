// Per-epoch metrics written as JSON lines (one object per line), appended, flushed after
// every record so a killed job keeps what it measured. Only rank 0 writes.
#pragma once
#include <cstdio>
#include <map>
#include <string>
#include <variant>

namespace halo::train {

using MetricValue = std::variant<int64_t, double, std::string>;
using MetricRecord = std::map<std::string, MetricValue>;

class MetricsLog {
 public:
  /// An empty path or enabled=false writes nothing. append=true keeps earlier records (resume).
  MetricsLog(const std::string& path, bool enabled, bool append);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;
  void write(const MetricRecord& record);
  static std::string to_json(const MetricRecord& record);

 private:
  std::FILE* f_ = nullptr;
  std::string path_;
};

}  // namespace halo::train
