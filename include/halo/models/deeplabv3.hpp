// DeepLabv3+ for climate segmentation, as the MLPerf HPC DeepCAM reference builds it: an
// (N, in_channels, H, W) field in, per-pixel logits (N, classes, H, W) out.
//
//   encoder   modified aligned Xception, output stride 16:
//             entry    conv 3x3/2 -> BN -> ReLU, conv 3x3 -> BN -> ReLU,
//                      block1 (128, /2; its ReLU'd output is the low-level feature),
//                      block2 (256, /2), block3 (728, /2)
//             middle   `middle_blocks` residual blocks of 3 separable convolutions (728)
//             exit     block20 (728 -> 1024), then separable 1536, 1536, 2048 at dilation 2
//   ASPP      1x1 and 3x3 at rates 6, 12, 18 (each -> BN -> ReLU), and a global-pooling
//             branch (mean -> 1x1 conv -> ReLU, spread back over the grid); concatenated,
//             1x1 -> BN -> ReLU to 256 channels
//   decoder   two stride-2 transposed convolutions (-> BN -> ReLU) back to stride 4, joined
//             with the low-level feature reduced to 48 channels, 3x3, 3x3, 1x1 convolutions,
//             then two more stride-2 transposed convolutions to full resolution
//
// A separable convolution is a depthwise 3x3 (groups = channels) followed by a pointwise
// 1x1; a block is [separable -> BN -> ReLU] x reps without the last ReLU, an extra
// separable convolution with stride 2 when the block downsamples (or at stride 1 when it
// is the last of a flow), plus a skip (1x1 conv -> BN when the shape changes).
// Convolutions have no bias (BatchNorm follows) except the decoder's 1x1 and the pooling
// branch's 1x1, whose bias stands in for the reference's per-channel affine there.
//
// Every BatchNorm directly followed by a ReLU is one BatchNorm layer with the ReLU fused
// (BatchNormNd::set_fused_relu: one pass forward, the ReLU's derivative inside the backward
// passes), named "<prefix>.bn"; only ReLUs after a residual Add remain their own layers.
// Layer names follow the reference's structure with dots ("block4.sep2.depthwise",
// "aspp.rate6.bn"), so checkpoints read as the model reads.
#pragma once
#include <cstdint>
#include <vector>

#include "halo/nn/batchnorm.hpp"
#include "halo/nn/model.hpp"

namespace halo::models {

struct DeepLabV3PlusOptions {
  int64_t in_channels = 16;
  int64_t classes = 3;
  int64_t height = 768;  ///< input height; a multiple of 16
  int64_t width = 1152;  ///< input width; a multiple of 16
  /// Number of middle-flow blocks (16 in the reference).
  int middle_blocks = 16;
  /// Multiplies every channel count (entry 32, 64, 128, 256, 728; exit 1024, 1536, 2048;
  /// ASPP and decoder 256; low-level 48) for small runs; each stays at least 4.
  double channel_scale = 1.0;
  /// ASPP dilation rates of the three 3x3 branches.
  std::vector<int64_t> aspp_rates{6, 12, 18};
  /// Dilation of the exit flow's last three separable convolutions.
  int64_t exit_dilation = 2;
  double bn_eps = 1e-5;
  double bn_momentum = 0.1;
};

/// Builds and compiles the model (parameters are not initialised: call Model::init).
/// Throws ConfigError when height or width is not a multiple of 16.
nn::Model deeplabv3_plus(const DeepLabV3PlusOptions& o = {});

/// Every BatchNorm layer of a model, in definition order (to make them synchronised with
/// dist::make_stats_reducer).
std::vector<nn::BatchNormNd*> batchnorm_layers(nn::Model& model);

}  // namespace halo::models
