// MLPerf logging: `:::MLLOG {json}` lines in the format of the mlperf-logging package
// (mlperf_logging.mllog), which its compliance checker and result summariser read:
//
//   :::MLLOG {"namespace": "", "time_ms": 1700000000123, "event_type": "POINT_IN_TIME",
//             "key": "global_batch_size", "value": 8, "metadata": {"file": "...", "lineno": 42}}
//
// Only rank 0 of a training instance writes (enabled=false elsewhere); every line is flushed
// so a job killed mid-run keeps what it logged. `time_ms` is the wall clock (ms since the
// epoch), as the package's, so logs of concurrent instances can be compared.
//
// The drivers log the submission fields, init/staging/run intervals and hyperparameters;
// the Trainer logs epoch_start/stop and eval_start/stop plus the target metric through
// TrainerOptions::mllog (docs/mlperf.md).
#pragma once
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <variant>
#include <vector>

namespace halo::train {

/// A logged value (JSON null, bool, integer, float, string or list). Kept free of the JSON
/// library, which is a private dependency of the library.
using MLValue = std::variant<std::nullptr_t, bool, int64_t, double, std::string, std::vector<int64_t>,
                             std::vector<double>>;
/// Metadata beyond file and lineno (epoch_num, status, ...).
using MLMeta = std::map<std::string, MLValue>;

class MLLogger {
 public:
  /// An empty path or enabled=false logs nothing (the time functions still work).
  /// append=true keeps earlier lines (a resumed run). Throws IOError naming the file.
  MLLogger(const std::string& path, bool enabled, bool append = false);
  ~MLLogger();
  MLLogger(const MLLogger&) = delete;
  MLLogger& operator=(const MLLogger&) = delete;

  bool enabled() const { return f_ != nullptr; }
  const std::string& path() const { return path_; }

  // File and line default to the caller's (GCC and Clang builtins) and go into the
  // metadata as the package does.
  void event(const std::string& key, const MLValue& value, const MLMeta& metadata,
             const char* file = __builtin_FILE(), int line = __builtin_LINE());
  void event(const std::string& key, const MLValue& value, const char* file = __builtin_FILE(),
             int line = __builtin_LINE());
  void start(const std::string& key, const MLMeta& metadata = {}, const char* file = __builtin_FILE(),
             int line = __builtin_LINE());
  void end(const std::string& key, const MLMeta& metadata = {}, const char* file = __builtin_FILE(),
           int line = __builtin_LINE());

  /// The Trainer's hooks. The metric the Trainer reports after validation under `key`
  /// (eval_accuracy for DeepCAM's IoU, eval_error for CosmoFlow's MAE), with epoch_num.
  void set_eval_metric(const std::string& metric, const std::string& key);
  void epoch_start(int epoch_num, const char* file = __builtin_FILE(), int line = __builtin_LINE());
  void epoch_stop(int epoch_num, const char* file = __builtin_FILE(), int line = __builtin_LINE());
  void eval_start(int epoch_num, const char* file = __builtin_FILE(), int line = __builtin_LINE());
  void eval_stop(int epoch_num, const std::map<std::string, double>& metrics, const char* file = __builtin_FILE(),
                 int line = __builtin_LINE());

  /// Milliseconds since the Unix epoch, the time base of every line.
  static int64_t now_ms();
  /// One line as written (without the newline); for tests.
  static std::string format(const std::string& event_type, const std::string& key, const MLValue& value,
                            const MLMeta& metadata, int64_t time_ms, const char* file, int line);

 private:
  void write(const char* type, const std::string& key, const MLValue& value, const MLMeta& metadata,
             const char* file, int line);
  std::FILE* f_ = nullptr;
  std::string path_;
  std::string eval_metric_, eval_key_;
};

/// `path` with `.instance<k>` before its extension (`run/metrics.jsonl` ->
/// `run/metrics.instance1.jsonl`; no extension: appended), for dist.instances > 1. Empty stays empty.
std::string instance_path(const std::string& path, int instance);

}  // namespace halo::train
