// The MLPerf HPC CosmoFlow network: a 3D CNN regressing 4 cosmological parameters from a
// (4, S, S, S) dark-matter volume.
//
//   5 x [Conv3d k3 same, 32*2^i filters, fused LeakyReLU(0.3) -> MaxPool3d 2]
//   Flatten -> Dense 128 -> LeakyReLU -> Dropout -> Dense 64 -> LeakyReLU -> Dropout
//   -> Dense 4 -> tanh -> x1.2
//
// L2 weight decay, when an optimizer applies it, acts on the dense layers only (as in the
// reference): convolution parameters are built with weight_decay = false.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "halo/nn/model.hpp"
#include "halo/nn/spatial.hpp"

namespace halo::models {

struct CosmoFlowOptions {
  int64_t input_size = 128;     ///< S: edge of the cubic input; divisible by 2^conv_layers
  int64_t in_channels = 4;
  int conv_layers = 5;
  int64_t base_filters = 32;    ///< layer i has base_filters * 2^i filters
  std::vector<int64_t> dense{128, 64};
  double dropout = 0.5;         ///< 0 disables the dropout layers
  double leaky_slope = 0.3;
  int64_t outputs = 4;
  double output_scale = 1.2;    ///< tanh output times this
  uint64_t dropout_seed = 0;    ///< drivers pass seed + replica so replicas draw different masks
  /// Spatial parallelism: each rank of the group holds its block of the volume (the model's
  /// input is that block), the convolutions and poolings exchange halos, and the volume is
  /// gathered before the dense head, which every rank of the group runs alike (so give all
  /// of them the same dropout_seed). Blocks whose pooled output would leave a rank of the
  /// grid without cells come after the gather and run whole on every rank too. Null: the
  /// whole volume on every rank.
  std::shared_ptr<nn::SpatialGroup> spatial;
};

/// Builds and compiles the model (parameters are not initialised: call Model::init). With
/// o.spatial the parameters (names, shapes, initial values) are those of the unsplit model.
nn::Model cosmoflow(const CosmoFlowOptions& o = {});

}  // namespace halo::models
