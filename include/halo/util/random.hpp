// Counter-based random numbers: the value at position i depends only on (seed, stream, i),
// never on thread count or visiting order, so initialisers and dropout masks are
// reproducible across machines and rank counts.
#pragma once
#include <cmath>
#include <cstdint>

namespace halo {

/// SplitMix64 finaliser: a strong 64-bit mix.
inline uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

class CounterRng {
 public:
  CounterRng(uint64_t seed, uint64_t stream = 0) : key_(mix64(seed ^ mix64(stream + 0x5851f42d4c957f2dull))) {}
  uint64_t bits(uint64_t i) const { return mix64(key_ ^ mix64(i)); }
  /// Uniform in [0, 1).
  double uniform(uint64_t i) const { return double(bits(i) >> 11) * (1.0 / 9007199254740992.0); }
  /// Standard normal (Box-Muller on two independent counters).
  double normal(uint64_t i) const {
    double u1 = (double(bits(2 * i) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    double u2 = uniform(2 * i + 1);
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  uint64_t key() const { return key_; }

 private:
  uint64_t key_;
};

/// Stable 64-bit hash of a string (FNV-1a), to derive per-parameter streams from names.
inline uint64_t hash_name(const char* s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; ++s) h = (h ^ uint64_t(uint8_t(*s))) * 1099511628211ull;
  return h;
}

}  // namespace halo
