// Kernels of the device gradient synchroniser (src/dist/grad_sync_device.cpp): packing f32
// gradients into a bf16 wire buffer and back with the averaging scale, and scaling a flat
// f32/f64 buffer in place. All are queued on the given stream (a cudaStream_t).
#pragma once
#include <cstdint>

namespace halo::cuda::nccl_pack {

/// dst[i] = bf16(src[i]) (round to nearest even), as bit patterns.
void f32_to_bf16(const float* src, uint16_t* dst, int64_t n, void* stream);
/// dst[i] = float(src[i]) * scale.
void bf16_to_f32_scaled(const uint16_t* src, float* dst, int64_t n, float scale, void* stream);
/// x[i] *= scale.
void scale_f32(float* x, int64_t n, float scale, void* stream);
void scale_f64(double* x, int64_t n, double scale, void* stream);

}  // namespace halo::cuda::nccl_pack
