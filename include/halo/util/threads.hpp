// The CPU thread count used by Halo's OpenMP kernels and by oneDNN (which shares the
// OpenMP runtime). Set once at start-up, e.g. from a driver's --threads.
#pragma once

namespace halo {
void set_num_threads(int n);
int num_threads();
}  // namespace halo
