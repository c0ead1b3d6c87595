// Included by every tests/unit/test_*_cuda.cpp: on a machine without a usable GPU the test
// program exits with 77 before Catch2 runs, which ctest reports as skipped
// (SKIP_RETURN_CODE 77 in tests/CMakeLists.txt), so CI builds the GPU tests but never fails
// on them for want of a GPU.
#pragma once
#include <cstdio>
#include <cstdlib>

#include "halo/cuda/runtime.hpp"

namespace halo_gpu_test {
inline const bool gpu_present = [] {
  if (!halo::cuda::available()) {
    std::fprintf(stderr, "no CUDA GPU visible: GPU tests skipped\n");
    std::exit(77);
  }
  return true;
}();
}  // namespace halo_gpu_test
