// The machine ceilings the benchmarks compare against, measured in the same run:
// FP32 FLOP/s of an FMA loop on all threads (AVX-512, or AVX2 where the CPU has no AVX-512), bf16 FLOP/s of a dot-product loop (AVX512_BF16),
// and streaming memory bandwidth.
#pragma once
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "halo/util/timer.hpp"

namespace halo::bench {

/// The sum of 16 accumulators' lanes: what the loops return, so no chain is optimised away.
__attribute__((target("avx512f"))) inline float sum_of(const __m512 (&acc)[16]) {
  __m512 s = acc[0];
  for (int j = 1; j < 16; ++j) s = _mm512_add_ps(s, acc[j]);
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, s);
  float total = 0;
  for (float v : lanes) total += v;
  return total;
}

/// 16 independent 512-bit FMA chains: enough in flight to fill both FMA pipes.
__attribute__((target("avx512f"))) inline float fma_chains(int64_t iters) {
  __m512 acc[16];
  for (int j = 0; j < 16; ++j) acc[j] = _mm512_set1_ps(float(j) * 1e-3f);
  const __m512 m = _mm512_set1_ps(0.999999f), a = _mm512_set1_ps(1e-6f);
  for (int64_t i = 0; i < iters; ++i)
    for (int j = 0; j < 16; ++j) acc[j] = _mm512_fmadd_ps(acc[j], m, a);
  return sum_of(acc);
}

/// Best of `runs` short runs of `loop(iters)` on every OpenMP thread at once, as FLOP/s given
/// the FLOPs one iteration does on one thread.
template <class Loop>
inline double measure_loop_rate(Loop loop, double flop_per_iter, int runs) {
  const int64_t iters = 10'000'000;
  double best = 0;
  volatile float sink = 0;
  for (int r = 0; r < runs; ++r) {
    double t0 = now_seconds();
    float part = 0;
#pragma omp parallel reduction(+ : part)
    part += loop(iters);
    double t = now_seconds() - t0;
    sink = sink + part;
    best = std::max(best, double(omp_get_max_threads()) * double(iters) * flop_per_iter / t);
  }
  return best;
}

/// sum_of for the 256-bit accumulators.
__attribute__((target("avx2"))) inline float sum_of(const __m256 (&acc)[16]) {
  __m256 s = acc[0];
  for (int j = 1; j < 16; ++j) s = _mm256_add_ps(s, acc[j]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, s);
  float total = 0;
  for (float v : lanes) total += v;
  return total;
}

/// The same with 256-bit FMAs, for CPUs without AVX-512 (AVX2 and FMA: Zen 3, Haswell on).
__attribute__((target("avx2,fma"))) inline float fma_chains_avx2(int64_t iters) {
  __m256 acc[16];
  for (int j = 0; j < 16; ++j) acc[j] = _mm256_set1_ps(float(j) * 1e-3f);
  const __m256 m = _mm256_set1_ps(0.999999f), a = _mm256_set1_ps(1e-6f);
  for (int64_t i = 0; i < iters; ++i)
    for (int j = 0; j < 16; ++j) acc[j] = _mm256_fmadd_ps(acc[j], m, a);
  return sum_of(acc);
}

/// FP32 FLOP/s of the FMA loop (16 chains x 16 lanes x 2 FLOP per iteration), with the
/// widest FMA the CPU has (512-bit, else 256-bit: 16 chains x 8 lanes x 2 FLOP): the
/// ceiling a kernel of this CPU can reach.
inline double measure_fma_peak(int runs = 5) {
  if (__builtin_cpu_supports("avx512f")) return measure_loop_rate(fma_chains, 16 * 16 * 2, runs);
  return measure_loop_rate(fma_chains_avx2, 16 * 8 * 2, runs);
}

/// 16 independent chains of 512-bit bf16 dot products (VDPBF16PS: 32 bf16 products summed
/// pairwise into 16 f32 lanes, 64 FLOP per instruction). 0 when the CPU lacks AVX512_BF16.
__attribute__((target("avx512f,avx512bf16"))) inline float bf16_dot_chains(int64_t iters) {
  __m512 acc[16];
  for (int j = 0; j < 16; ++j) acc[j] = _mm512_set1_ps(float(j) * 1e-3f);
  const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(2e-3f));
  const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.5f), _mm512_set1_ps(0.25f));
  for (int64_t i = 0; i < iters; ++i)
    for (int j = 0; j < 16; ++j) acc[j] = _mm512_dpbf16_ps(acc[j], a, b);
  return sum_of(acc);
}

/// bf16 FLOP/s of the dot-product loop (16 chains x 64 FLOP per iteration), or 0 where the
/// CPU has no AVX512_BF16.
inline double measure_bf16_peak(int runs = 5) {
  if (!__builtin_cpu_supports("avx512bf16")) return 0;
  return measure_loop_rate(bf16_dot_chains, 16 * 64, runs);
}

/// Best of `runs`: bytes/s of a triad a[i] = b[i] + s*c[i] over 3 x 64 MiB on all threads
/// (counting 3 x 4 bytes per element: two reads and one write; pages touched beforehand).
inline double measure_stream_bandwidth(int runs = 5) {
  const int64_t n = int64_t(16) << 20;
  std::vector<float> a(size_t(n), 0.f), b(size_t(n), 1.f), c(size_t(n), 2.f);
  double best = 0;
  for (int r = 0; r < runs; ++r) {
    double t0 = now_seconds();
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) a[size_t(i)] = b[size_t(i)] + 0.5f * c[size_t(i)];
    double t = now_seconds() - t0;
    best = std::max(best, 12.0 * double(n) / t);
  }
  volatile float sink = a[size_t(n / 2)];
  (void)sink;
  return best;
}

}  // namespace halo::bench
