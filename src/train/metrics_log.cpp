#include "halo/train/metrics_log.hpp"

#include <nlohmann/json.hpp>

#include "halo/util/error.hpp"

namespace halo::train {

MetricsLog::MetricsLog(const std::string& path, bool enabled, bool append) : path_(path) {
  if (!enabled || path.empty()) return;
  f_ = std::fopen(path.c_str(), append ? "a" : "w");
  HALO_CHECK_T(IOError, f_ != nullptr, "cannot open metrics file '", path, "' for writing");
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
  std::fprintf(f_, "%s\n", to_json(record).c_str());
  std::fflush(f_);
}

}  // namespace halo::train
