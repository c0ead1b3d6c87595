#include "halo/train/metrics_log.hpp"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>

#include "halo/util/error.hpp"

namespace halo::train {

MetricsLog::MetricsLog(const std::string& path, bool enabled, bool append) : path_(path) {
  if (!enabled || path.empty()) return;
  f_ = std::fopen(path.c_str(), append ? "a" : "w");
  HALO_CHECK_T(IOError, f_ != nullptr, "cannot open metrics file '", path, "' for writing: ", std::strerror(errno));
}

MetricsLog::~MetricsLog() {
  if (f_) std::fclose(f_);
}

std::string MetricsLog::to_json(const MetricRecord& record) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : record) std::visit([&](const auto& x) { j[k] = x; }, v);
  return j.dump();
}

void MetricsLog::write(const MetricRecord& record) {
  if (!f_) return;
  // A record that does not reach the file (a full disk, a quota) stops the run: metrics
  // silently lost are found out only after the allocation is spent.
  errno = 0;
  const bool ok = std::fprintf(f_, "%s\n", to_json(record).c_str()) >= 0 && std::fflush(f_) == 0;
  HALO_CHECK_T(IOError, ok, "cannot write to the metrics file '", path_, "' (output.metrics): ",
               errno ? std::strerror(errno) : "write error");
}

}  // namespace halo::train
