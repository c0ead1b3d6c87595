// Throughput of the element-wise kernels (GB/s of memory traffic) and of GEMM (GFLOP/s).
// Usage: halo-bench-elementwise [elements=33554432] [gemm_size=1024] [repeats=10]
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "halo/ops/elementwise.hpp"
#include "halo/ops/matmul.hpp"
#include "halo/util/threads.hpp"
#include "args.hpp"

using namespace halo;

template <class F>
double best_seconds(int repeats, F f) {
  f();  // warm-up: touches memory, fills the allocator cache
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

int main(int argc, char** argv) {
  if (halo::bench::help(argc, argv, "usage: halo-bench-elementwise [elements=33554432] [gemm_size=1024] [repeats=10]\n  GB/s of the element-wise kernels and GFLOP/s of GEMM.\n")) return 0;
  const int64_t n = argc > 1 ? std::atoll(argv[1]) : (int64_t(1) << 25);
  const int64_t m = argc > 2 ? std::atoll(argv[2]) : 1024;
  const int repeats = argc > 3 ? std::atoi(argv[3]) : 10;
  Tensor x = Tensor::full({n}, 0.5), y = Tensor::full({n}, 0.25);
  const double gb = double(n) * 4 / 1e9;
  Tensor out;
  double t = best_seconds(repeats, [&] { out = ops::activation_forward(ops::Activation::relu, x); });
  std::printf("relu forward      %8.2f GB/s\n", 2 * gb / t);
  t = best_seconds(repeats, [&] { out = ops::activation_backward(ops::Activation::relu, x, y); });
  std::printf("relu backward     %8.2f GB/s\n", 3 * gb / t);
  t = best_seconds(repeats, [&] { out = ops::activation_forward(ops::Activation::tanh, x); });
  std::printf("tanh forward      %8.2f GB/s\n", 2 * gb / t);
  t = best_seconds(repeats, [&] { ops::axpy_(y, 1e-3, x); });
  std::printf("axpy              %8.2f GB/s\n", 3 * gb / t);
  Tensor a = Tensor::full({m, m}, 0.5), b = Tensor::full({m, m}, 0.5), c = Tensor::zeros({m, m});
  t = best_seconds(repeats, [&] { ops::gemm(false, true, 1.0, a, b, 0.0, c); });
  std::printf("sgemm %lldx%lldx%lld %8.1f GFLOP/s (%d threads)\n", (long long)m, (long long)m, (long long)m,
              2.0 * double(m) * double(m) * double(m) / t / 1e9, num_threads());
  return 0;
}
