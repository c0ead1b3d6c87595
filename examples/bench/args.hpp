// Command-line lookups shared by the benchmarks: `--name value` options and bare flags.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace halo::bench {

/// The value after `name`, or nullptr when the option is absent.
inline const char* opt_value(int argc, char** argv, const char* name) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  return nullptr;
}
/// The numeric value after `name`, or `def` when the option is absent.
inline double arg(int argc, char** argv, const char* name, double def) {
  const char* v = opt_value(argc, argv, name);
  return v ? std::atof(v) : def;
}
/// Whether the bare flag `name` was given.
inline bool flag(int argc, char** argv, const char* name) {
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return true;
  return false;
}

/// Prints `usage` when --help or -h was given and returns true (the caller then exits 0).
inline bool help(int argc, char** argv, const char* usage) {
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      std::fputs(usage, stdout);
      return true;
    }
  return false;
}

}  // namespace halo::bench
