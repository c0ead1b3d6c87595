// bf16 <-> f32 for the CPU's element-wise loops under mixed precision: 16 values at a time
// where the build targets AVX-512 (the conversion to bf16 in one instruction with AVX512_BF16,
// else in integer arithmetic with the same round-to-nearest-even as halo::bf16), one at a
// time otherwise. Loops over bf16 arrays read through `for_each_bf16`, so each is written
// once as a lambda over floats.
#pragma once
#include <cstdint>

#include "halo/tensor/dtype.hpp"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace halo::kernels::cpu {

#if defined(__AVX512F__)
inline __m512 load_bf16x16(const bf16* p) {
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  // The maskz forms: GCC 12's unmasked ones start from _mm512_undefined and warn when inlined.
  const __m512i wide = _mm512_maskz_cvtepu16_epi32(__mmask16(0xffff), h);
  return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(__mmask16(0xffff), wide, 16));
}

inline void store_bf16x16(bf16* p, __m512 v) {
#if defined(__AVX512BF16__)
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), (__m256i)_mm512_cvtneps_pbh(v));
#else
  // Round to nearest even on the top 16 bits; NaN stays NaN (quiet bit set), as in bf16(float).
  const __m512i u = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb)), 16);
  const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40)));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(r));
#endif
}
#endif

/// out[i] = f(a[i]) over n bf16 values, f taking and returning floats; f must also accept
/// __m512 where the build has AVX-512 (16 lanes at once), so write it with a generic lambda.
template <class F>
void map_bf16(int64_t n, const bf16* a, bf16* out, F f) {
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < (n + 4095) / 4096; ++b) {
    int64_t i = b * 4096;
    const int64_t end = i + 4096 < n ? i + 4096 : n;
#if defined(__AVX512F__)
    for (; i + 16 <= end; i += 16) store_bf16x16(out + i, f(load_bf16x16(a + i)));
#endif
    for (; i < end; ++i) out[i] = bf16(f(float(a[i])));
  }
}

/// out[i] = f(a[i], b[i]), as map_bf16.
template <class F>
void map2_bf16(int64_t n, const bf16* a, const bf16* b, bf16* out, F f) {
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < (n + 4095) / 4096; ++k) {
    int64_t i = k * 4096;
    const int64_t end = i + 4096 < n ? i + 4096 : n;
#if defined(__AVX512F__)
    for (; i + 16 <= end; i += 16) store_bf16x16(out + i, f(load_bf16x16(a + i), load_bf16x16(b + i)));
#endif
    for (; i < end; ++i) out[i] = bf16(f(float(a[i]), float(b[i])));
  }
}

// The piecewise-linear activations as generic lambdas' building blocks: x > 0 ? x : x * s.
inline float leaky(float x, float s) { return x > 0.0f ? x : x * s; }
/// g where y > 0, else g * s (ReLU: s = 0): the derivative through the activation's output.
inline float leaky_grad(float y, float g, float s) { return y > 0.0f ? g : g * s; }
#if defined(__AVX512F__)
inline __m512 leaky(__m512 x, float s) {
  const __mmask16 pos = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GT_OQ);
  return _mm512_mask_mov_ps(_mm512_mul_ps(x, _mm512_set1_ps(s)), pos, x);
}
inline __m512 leaky_grad(__m512 y, __m512 g, float s) {
  const __mmask16 pos = _mm512_cmp_ps_mask(y, _mm512_setzero_ps(), _CMP_GT_OQ);
  return _mm512_mask_mov_ps(_mm512_mul_ps(g, _mm512_set1_ps(s)), pos, g);
}
inline __m512 mul(__m512 a, __m512 b) { return _mm512_mul_ps(a, b); }
#endif
inline float mul(float a, float b) { return a * b; }

}  // namespace halo::kernels::cpu
