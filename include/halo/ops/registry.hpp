// Which kernels this build and process have. Every backend (kernels/cpu, kernels/cuda)
// registers one table of kernels per op family for its device kind; the op entry points in
// halo::ops look the table up by the device of their tensors. A layer declares the families
// its passes use (nn::Layer::op_families) and can then answer whether it runs on a device.
#pragma once
#include <vector>

#include "halo/tensor/device.hpp"

namespace halo::ops {

/// One family per header of halo/ops (plus the optimizer update rules).
enum class OpFamily { elementwise, conv, pool, batchnorm, matmul, loss, metrics, concat, upsample, optim };

const char* name(OpFamily f);
/// Every family, in declaration order.
const std::vector<OpFamily>& all_op_families();
/// Whether this build has kernels of family `f` for devices of `kind` (cpu always does).
bool has_kernels(OpFamily f, DeviceKind kind);
/// Whether this build has any kernels for devices of `kind` (false for cuda in a CPU build).
bool has_backend(DeviceKind kind);
/// Whether bf16 convolutions and pooling run on this CPU: a build with oneDNN on a CPU where
/// oneDNN has bf16 convolutions (on x86: AVX-512, avx512_core or newer). Elsewhere a bf16
/// convolution throws, and the Trainer refuses TrainerOptions::precision bf16 at construction
/// for a model on the CPU with convolutions or pooling.
bool cpu_bf16_supported();

}  // namespace halo::ops
