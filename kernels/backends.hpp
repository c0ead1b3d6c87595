// Registration of the built-in backends. Each is defined in its own folder: kernels/cpu, and
// kernels/cuda in CUDA builds or its stand-in kernels/no_cuda otherwise (CMake picks one), so
// no code outside kernels/ needs to know which backends a build has.
#pragma once
#include <string>

#include "halo/tensor/device.hpp"

namespace halo::kernels {

/// What to tell a user who asks for a device kind this build has no backend for, e.g. "this
/// build of Halo has no CUDA support (rebuild with -DHALO_ENABLE_CUDA=ON)".
std::string missing_backend_hint(DeviceKind kind);

/// Fills the cpu op tables.
void register_cpu();
/// Registers the cuda device backend (allocator, copies) and fills the cuda op tables; the
/// CPU-build stand-in registers nothing. Touches no GPU.
void register_cuda();
/// Runs both once per process; every lookup of a device backend or op table calls it first.
void register_builtin_backends();

}  // namespace halo::kernels
