// Upsampling of (N, C, spatial...) tensors: nearest neighbour (2D and 3D) and bilinear (2D).
//
// The output size is given either as integer scale factors or as a target size. Source
// coordinates follow PyTorch's conventions with the ratio in/out:
//   nearest:                 src = floor(dst * in / out)
//   bilinear, align_corners: src = dst * (in - 1) / (out - 1)
//   bilinear, otherwise:     src = max(0, (dst + 0.5) * in / out - 0.5)
// The output keeps the input's memory format.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "halo/tensor/tensor.hpp"

namespace halo::ops {

enum class UpsampleMode { nearest, bilinear };

struct UpsampleConfig {
  UpsampleMode mode = UpsampleMode::nearest;
  std::vector<int64_t> scale;  ///< integer factor per spatial dimension (used when size is empty)
  std::vector<int64_t> size;   ///< target spatial size (takes precedence over scale)
  bool align_corners = false;  ///< bilinear only

  /// "bilinear x2x2" / "nearest to 96x144"
  std::string str() const;
};

/// Throws ShapeError naming `who` when the configuration does not fit the input.
Shape upsample_output_shape(const Shape& input, const UpsampleConfig& cfg, const std::string& who = "upsample");

Tensor upsample_forward(const Tensor& x, const UpsampleConfig& cfg, const std::string& who = "upsample");
/// dL/dx for an input of `input_shape` in memory format `format`, given dL/dy.
Tensor upsample_backward(const Tensor& dy, const Shape& input_shape, const UpsampleConfig& cfg,
                         MemoryFormat format = MemoryFormat::contiguous, const std::string& who = "upsample");

}  // namespace halo::ops
