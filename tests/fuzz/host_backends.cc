// The fuzz targets parse files into host tensors and never run a kernel, so their build
// registers no op tables: a kernel call would fail with the registry's "no kernels" error
// instead of dragging oneDNN and BLAS into the instrumented build.
#include "backends.hpp"

namespace halo::kernels {
void register_cpu() {}
void register_cuda() {}
}  // namespace halo::kernels
