// Max and average pooling over 2 or 3 spatial dimensions, and global average pooling.
//
// Inputs are (N, C, spatial...) in any memory format; outputs keep the input's format
// (channels-last in, channels-last out), so a pooling layer between two channels-last
// convolutions never reorders. Output size per spatial dimension is
// floor((in + 2*pad - kernel) / stride) + 1, as in PyTorch with ceil_mode=false.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "halo/tensor/tensor.hpp"

namespace halo::ops {

/// The pooling kinds, listed once (name in configs and errors, prefix of the layer type):
/// the enum and both names are generated from this list.
#define HALO_POOL_KINDS(X) X(max, "Max") X(avg, "Avg")

enum class PoolKind {
#define HALO_POOL_KIND_ENTRY(kind, layer) kind,
  HALO_POOL_KINDS(HALO_POOL_KIND_ENTRY)
#undef HALO_POOL_KIND_ENTRY
};

/// "max", "avg".
inline const char* name(PoolKind k) {
  switch (k) {
#define HALO_POOL_KIND_NAME(kind, layer) \
  case PoolKind::kind:                   \
    return #kind;
    HALO_POOL_KINDS(HALO_POOL_KIND_NAME)
#undef HALO_POOL_KIND_NAME
  }
  return "?";
}

/// "Max", "Avg": the start of the layer type ("MaxPool3d").
inline const char* layer_prefix(PoolKind k) {
  switch (k) {
#define HALO_POOL_KIND_PREFIX(kind, layer) \
  case PoolKind::kind:                     \
    return layer;
    HALO_POOL_KINDS(HALO_POOL_KIND_PREFIX)
#undef HALO_POOL_KIND_PREFIX
  }
  return "?";
}

struct PoolConfig {
  PoolKind kind = PoolKind::max;
  std::vector<int64_t> kernel;   ///< one entry per spatial dimension
  std::vector<int64_t> stride;   ///< one entry per spatial dimension
  std::vector<int64_t> padding;  ///< one entry per spatial dimension, at most kernel/2
  /// Average pooling only: divide by the whole window (true) or by the in-bounds part (false).
  bool count_include_pad = true;

  int spatial_dims() const { return int(kernel.size()); }
  /// "max 3x3x3 stride 2x2x2 pad 1x1x1"
  std::string str() const;
};

/// Throws ShapeError naming `who` if the configuration or the input shape does not fit.
Shape pool_output_shape(const Shape& input, const PoolConfig& cfg, const std::string& who = "pool");

/// Per-shape state kept by a layer: backend primitives created once per input shape and
/// layout, and what forward leaves for backward (max pooling: where the maxima were).
/// One plan serves one layer; it rebuilds itself when the input shape or layout changes.
class PoolPlan {
 public:
  PoolPlan();
  ~PoolPlan();
  PoolPlan(const PoolPlan&) = delete;
  PoolPlan& operator=(const PoolPlan&) = delete;
  /// Opaque state of the device's kernels (on the CPU: oneDNN primitives and workspace).
  struct Impl;
  std::unique_ptr<Impl> impl;
};

/// y = pool(x). With a plan, fast backends keep their primitives and the max-pooling
/// workspace in it for the matching backward call.
Tensor pool_forward(const Tensor& x, const PoolConfig& cfg, PoolPlan* plan = nullptr, const std::string& who = "pool");
/// dL/dx given dL/dy and the forward input x (same x as the last forward with this plan).
Tensor pool_backward(const Tensor& dy, const Tensor& x, const PoolConfig& cfg, PoolPlan* plan = nullptr,
                     const std::string& who = "pool");

/// Mean over all spatial positions: (N, C, spatial...) -> (N, C, 1, ..., 1), or (N, C) when
/// keep_dims is false.
Tensor global_avg_pool_forward(const Tensor& x, bool keep_dims = true, const std::string& who = "global_avg_pool");
/// dL/dx of global average pooling; `input_shape` is the forward input's shape, and dx
/// takes `format` (the forward input's memory format).
Tensor global_avg_pool_backward(const Tensor& dy, const Shape& input_shape, MemoryFormat format = MemoryFormat::contiguous,
                                const std::string& who = "global_avg_pool");

}  // namespace halo::ops
