// The stand-in for kernels/cuda in builds without CUDA: no cuda device backend and no cuda op
// tables, so cuda tensors cannot be made and every cuda lookup reports that this build has
// no CUDA support.
#include "backends.hpp"

namespace halo::kernels {

void register_cuda() {}

}  // namespace halo::kernels
