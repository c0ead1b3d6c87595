// Element types. f32 is the compute type; f64 serves gradient checks; bf16 and f16 are
// storage types (converted to f32 to compute on the CPU).
#pragma once
#include <cstdint>
#include <cstring>
#include <string>

#include "halo/util/error.hpp"

namespace halo {

enum class DType { f32, f64, bf16, f16, i32, i64, u8 };

/// bfloat16 storage: the top 16 bits of an IEEE float, rounded to nearest even.
struct bf16 {
  uint16_t bits = 0;
  bf16() = default;
  explicit bf16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
      bits = uint16_t((u >> 16) | 0x40);  // keep NaN a NaN
    } else {
      u += 0x7fffu + ((u >> 16) & 1u);
      bits = uint16_t(u >> 16);
    }
  }
  explicit operator float() const {
    uint32_t u = uint32_t(bits) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
};

/// IEEE binary16 storage, converted in software (round to nearest even).
struct f16 {
  uint16_t bits = 0;
  f16() = default;
  explicit f16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) {  // inf or nan
      bits = uint16_t(sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u : 0u));
      return;
    }
    if (absx >= 0x477ff000u) {  // overflows to inf after rounding
      bits = uint16_t(sign | 0x7c00u);
      return;
    }
    if (absx < 0x38800000u) {  // subnormal or zero in half
      float a;
      std::memcpy(&a, &absx, 4);
      // scale so that the half subnormal step (2^-24) is 1, then round to nearest even
      float scaled = a * 16777216.0f;
      uint32_t m = uint32_t(scaled);
      float rem = scaled - float(m);
      if (rem > 0.5f || (rem == 0.5f && (m & 1u))) ++m;
      bits = uint16_t(sign | m);
      return;
    }
    uint32_t mant = absx & 0x7fffffu;
    uint32_t exp = (absx >> 23) - 127 + 15;
    uint32_t h = (exp << 10) | (mant >> 13);
    uint32_t rest = mant & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
    bits = uint16_t(sign | h);
  }
  explicit operator float() const {
    uint32_t sign = uint32_t(bits & 0x8000u) << 16;
    uint32_t exp = (bits >> 10) & 0x1fu;
    uint32_t mant = bits & 0x3ffu;
    uint32_t out;
    if (exp == 0) {
      float v = float(mant) / 16777216.0f;
      std::memcpy(&out, &v, 4);
      out |= sign;
    } else if (exp == 31) {
      out = sign | 0x7f800000u | (mant << 13);
    } else {
      out = sign | ((exp - 15 + 127) << 23) | (mant << 13);
    }
    float f;
    std::memcpy(&f, &out, 4);
    return f;
  }
};

inline size_t size_of(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::f64: return 8;
    case DType::bf16: return 2;
    case DType::f16: return 2;
    case DType::i32: return 4;
    case DType::i64: return 8;
    case DType::u8: return 1;
  }
  return 0;
}

inline const char* name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::bf16: return "bf16";
    case DType::f16: return "f16";
    case DType::i32: return "i32";
    case DType::i64: return "i64";
    case DType::u8: return "u8";
  }
  return "?";
}

inline bool is_floating(DType t) { return t == DType::f32 || t == DType::f64 || t == DType::bf16 || t == DType::f16; }

template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::f32; }
template <> constexpr DType dtype_of<double>() { return DType::f64; }
template <> constexpr DType dtype_of<bf16>() { return DType::bf16; }
template <> constexpr DType dtype_of<f16>() { return DType::f16; }
template <> constexpr DType dtype_of<int32_t>() { return DType::i32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::i64; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::u8; }

}  // namespace halo

/// Runs the body with `T` bound to float or double according to `dt`; other dtypes throw.
/// Reference kernels use it so one template serves f32 and the f64 gradient checks.
#define HALO_DISPATCH_FLOAT(dt, what, ...)                                                    \
  [&] {                                                                                     \
    switch (dt) {                                                                           \
      case ::halo::DType::f32: { using T = float; return __VA_ARGS__(); }                   \
      case ::halo::DType::f64: { using T = double; return __VA_ARGS__(); }                  \
      default:                                                                              \
        throw ::halo::ShapeError(::halo::str(what, ": dtype ", ::halo::name(dt),            \
                                             " not supported (f32 or f64 expected)"));      \
    }                                                                                       \
  }()
