// Driver configuration: a YAML file plus command-line overrides of any key.
//
// Drivers read it once at the top into their own typed settings and pass typed values
// down; nothing deep in the library reads configuration. Keys are dotted paths
// ("optimizer.lr"). Every key read is remembered, so `unused_keys()` can reject typos.
#pragma once
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

namespace halo {

/// The open upper end of a range-checked getter's range: get_double(key, 1, 0, kNoLimit).
inline constexpr double kNoLimit = std::numeric_limits<double>::max();
inline constexpr int64_t kNoLimitInt = std::numeric_limits<int64_t>::max();
/// The smallest positive double: a lower end meaning "greater than zero".
inline constexpr double kPositive = std::numeric_limits<double>::min();

class Config {
 public:
  Config();
  ~Config();
  Config(const Config&);
  Config& operator=(const Config&);

  static Config load_file(const std::string& path);
  /// The two halves of load_file, for a job whose rank 0 reads the file and broadcasts the
  /// text (dist/root_read.hpp): read_file_text throws ConfigError when `path` cannot be
  /// read; parse_file parses `text` as the contents of `path` (messages name the file).
  static std::string read_file_text(const std::string& path);
  static Config parse_file(const std::string& path, const std::string& text);
  static Config parse(const std::string& yaml_text);

  /// Applies "key.path=value" (the value is parsed as YAML: numbers, lists, strings).
  void set(const std::string& assignment);

  bool has(const std::string& key) const;
  /// A key given with no value (`key:` in YAML, `key=` as an override) reads as "".
  std::string get_string(const std::string& key, const std::string& fallback) const;
  double get_double(const std::string& key, double fallback) const;
  int64_t get_int(const std::string& key, int64_t fallback) const;
  bool get_bool(const std::string& key, bool fallback) const;
  std::vector<double> get_doubles(const std::string& key, const std::vector<double>& fallback) const;
  std::vector<int64_t> get_ints(const std::string& key, const std::vector<int64_t>& fallback) const;
  /// Range-checked variants: a value outside [lo, hi] throws ConfigError naming the key, the
  /// value, the valid range and where the value came from (see origin()).
  int64_t get_int(const std::string& key, int64_t fallback, int64_t lo, int64_t hi) const;
  double get_double(const std::string& key, double fallback, double lo, double hi) const;
  /// Required variants: throw ConfigError naming the key and the file when absent.
  std::string require_string(const std::string& key) const;

  /// Where `key`'s value comes from, for messages: "the command line (key=value)" when an
  /// override set it or a map above it, "<file>" when the file did, "the default" otherwise.
  std::string origin(const std::string& key) const;

  /// Leaf keys present in the file or overrides that no getter has asked for.
  std::vector<std::string> unused_keys() const;
  /// The whole configuration as YAML text (as used, after overrides).
  std::string dump() const;
  const std::string& source() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace halo
