#include "halo/train/mllog.hpp"

#include <chrono>
#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "halo/util/error.hpp"

namespace halo::train {

namespace {

nlohmann::ordered_json to_json(const MLValue& v) {
  return std::visit([](const auto& x) { return nlohmann::ordered_json(x); }, v);
}

}  // namespace

MLLogger::MLLogger(const std::string& path, bool enabled, bool append) : path_(path) {
  if (path.empty() || !enabled) return;
  const auto dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) std::filesystem::create_directories(dir);
  f_ = std::fopen(path.c_str(), append ? "a" : "w");
  HALO_CHECK_T(IOError, f_ != nullptr, "output.mllog: cannot open '", path, "': ", std::strerror(errno));
}

MLLogger::~MLLogger() {
  if (f_) std::fclose(f_);
}

int64_t MLLogger::now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string MLLogger::format(const std::string& event_type, const std::string& key, const MLValue& value,
                             const MLMeta& metadata, int64_t time_ms, const char* file, int line) {
  // The key order of mlperf_logging.mllog's lines; ordered_json keeps it.
  nlohmann::ordered_json j;
  j["namespace"] = "";
  j["time_ms"] = time_ms;
  j["event_type"] = event_type;
  j["key"] = key;
  j["value"] = to_json(value);
  nlohmann::ordered_json meta;
  meta["file"] = file ? std::filesystem::path(file).filename().string() : std::string();
  meta["lineno"] = line;
  for (const auto& [k, v] : metadata) meta[k] = to_json(v);
  j["metadata"] = meta;
  return ":::MLLOG " + j.dump();
}

void MLLogger::write(const char* type, const std::string& key, const MLValue& value,
                     const MLMeta& metadata, const char* file, int line) {
  if (!f_) return;
  const std::string s = format(type, key, value, metadata, now_ms(), file, line) + "\n";
  // Flushed per line: a killed job keeps its log up to the kill.
  HALO_CHECK_T(IOError, std::fwrite(s.data(), 1, s.size(), f_) == s.size() && std::fflush(f_) == 0,
               "output.mllog: cannot write '", path_, "': ", std::strerror(errno));
}

void MLLogger::event(const std::string& key, const MLValue& value, const MLMeta& metadata,
                     const char* file, int line) {
  write("POINT_IN_TIME", key, value, metadata, file, line);
}
void MLLogger::event(const std::string& key, const MLValue& value, const char* file, int line) {
  write("POINT_IN_TIME", key, value, MLMeta{}, file, line);
}
void MLLogger::start(const std::string& key, const MLMeta& metadata, const char* file, int line) {
  write("INTERVAL_START", key, nullptr, metadata, file, line);
}
void MLLogger::end(const std::string& key, const MLMeta& metadata, const char* file, int line) {
  write("INTERVAL_END", key, nullptr, metadata, file, line);
}

void MLLogger::set_eval_metric(const std::string& metric, const std::string& key) {
  eval_metric_ = metric;
  eval_key_ = key;
}
// The caller's file and line (the Trainer's) go into the lines, not these.
void MLLogger::epoch_start(int epoch_num, const char* file, int line) {
  start("epoch_start", MLMeta{{"epoch_num", int64_t(epoch_num)}}, file, line);
}
void MLLogger::epoch_stop(int epoch_num, const char* file, int line) {
  end("epoch_stop", MLMeta{{"epoch_num", int64_t(epoch_num)}}, file, line);
}
void MLLogger::eval_start(int epoch_num, const char* file, int line) {
  start("eval_start", MLMeta{{"epoch_num", int64_t(epoch_num)}}, file, line);
}
void MLLogger::eval_stop(int epoch_num, const std::map<std::string, double>& metrics, const char* file, int line) {
  end("eval_stop", MLMeta{{"epoch_num", int64_t(epoch_num)}}, file, line);
  if (eval_key_.empty()) return;
  auto it = metrics.find(eval_metric_);
  if (it != metrics.end()) event(eval_key_, it->second, MLMeta{{"epoch_num", int64_t(epoch_num)}}, file, line);
}

std::string instance_path(const std::string& path, int instance) {
  if (path.empty()) return path;
  std::filesystem::path p(path);
  const std::string tag = ".instance" + std::to_string(instance);
  if (!p.has_extension()) return path + tag;
  return (p.parent_path() / (p.stem().string() + tag + p.extension().string())).string();
}

}  // namespace halo::train
