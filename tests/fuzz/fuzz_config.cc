// libFuzzer target: Halo's configuration (halo::Config over yaml-cpp).
//
// Input: NUL-separated parts. Part 0 is YAML text for Config::parse, part 1 an override
// for Config::set ("key.path=value"), parts 2.. keys to read with every typed getter.
// Then unused_keys(), dump(), copies, and a re-parse of the dump.
//
// Contract: parse, set and the getters throw halo::ConfigError or succeed; never a crash
// (stack overflow on deep nesting included), sanitizer report, other exception (yaml-cpp's
// own included), or runaway time or memory. dump() of a configuration parses again.
#include <cstdint>
#include <string>
#include <vector>

#include "halo/util/config.hpp"
#include "halo/util/error.hpp"

using halo::Config;
using halo::ConfigError;

namespace {

void read_key(const Config& c, const std::string& key) {
  try { (void)c.has(key); } catch (const ConfigError&) {}
  try { (void)c.get_string(key, "d"); } catch (const ConfigError&) {}
  try { (void)c.get_double(key, 1.5); } catch (const ConfigError&) {}
  try { (void)c.get_int(key, 7); } catch (const ConfigError&) {}
  try { (void)c.get_bool(key, true); } catch (const ConfigError&) {}
  try { (void)c.get_doubles(key, {1.0}); } catch (const ConfigError&) {}
  try { (void)c.get_ints(key, {1}); } catch (const ConfigError&) {}
  try { (void)c.require_string(key); } catch (const ConfigError&) {}
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string> parts(1);
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == 0) parts.emplace_back();
    else parts.back().push_back(char(data[i]));
  }
  Config c;
  try {
    c = Config::parse(parts[0]);
  } catch (const ConfigError&) {
    return 0;
  }
  if (parts.size() > 1) {
    try {
      c.set(parts[1]);
    } catch (const ConfigError&) {
    }
  }
  for (size_t k = 2; k < parts.size() && k < 10; ++k) read_key(c, parts[k]);
  // a few keys every driver reads, and every leaf the file holds
  for (const char* k : {"optimizer.lr", "data.batch_size", "train.epochs", "model", "a.b.c"}) read_key(c, k);
  const std::vector<std::string> unused = c.unused_keys();
  for (size_t k = 0; k < unused.size() && k < 16; ++k) read_key(c, unused[k]);
  (void)c.unused_keys();
  Config copy(c);
  copy = c;
  const std::string text = c.dump();
  try {
    Config again = Config::parse(text);
    (void)again.dump();
  } catch (const ConfigError&) {
  }
  return 0;
}
