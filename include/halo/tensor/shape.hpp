// Shapes and strides: plain vectors of int64, with printing and counting helpers.
#pragma once
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace halo {

using Shape = std::vector<int64_t>;
using Strides = std::vector<int64_t>;

inline int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

inline std::string to_string(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

/// Row-major (C order) strides in elements.
inline Strides contiguous_strides(const Shape& s) {
  Strides st(s.size());
  int64_t acc = 1;
  for (size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

/// Channels-last strides for a logical (N, C, spatial...) shape: memory order N, spatial..., C.
/// oneDNN calls this nhwc / ndhwc; consecutive layers keep it so nothing is reordered.
inline Strides channels_last_strides(const Shape& s) {
  if (s.size() < 3) return contiguous_strides(s);
  Strides st(s.size());
  int64_t acc = 1;
  st[1] = acc;
  acc *= s[1];
  for (size_t i = s.size(); i-- > 2;) {
    st[i] = acc;
    acc *= s[i];
  }
  st[0] = acc;
  return st;
}

}  // namespace halo

namespace std {
inline ostream& operator<<(ostream& os, const halo::Shape& s) { return os << halo::to_string(s); }
}  // namespace std
