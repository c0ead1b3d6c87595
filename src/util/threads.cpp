#include "halo/util/threads.hpp"

#include <omp.h>

#include "halo/util/error.hpp"

namespace halo {
void set_num_threads(int n) {
  HALO_CHECK_T(ConfigError, n >= 1, "thread count must be at least 1, got ", n);
  omp_set_num_threads(n);
}
int num_threads() { return omp_get_max_threads(); }
}  // namespace halo
