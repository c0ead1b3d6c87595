#include "halo/models/cosmoflow.hpp"

#include <memory>

#include "halo/nn/activation.hpp"
#include "halo/nn/conv.hpp"
#include "halo/nn/dropout.hpp"
#include "halo/nn/linear.hpp"
#include "halo/nn/pool.hpp"
#include "halo/nn/structure.hpp"

namespace halo::models {

namespace {

// Whether a cubic volume of this edge split over the group leaves every rank a cell.
bool fits_grid(const nn::SpatialGroup& g, int64_t edge) {
  for (int p : g.parts())
    if (edge < p) return false;
  return true;
}

}  // namespace

nn::Model cosmoflow(const CosmoFlowOptions& o) {
  HALO_CHECK_T(ConfigError, o.conv_layers >= 1, "cosmoflow: conv_layers must be at least 1");
  const int64_t shrink = int64_t(1) << o.conv_layers;
  HALO_CHECK_T(ConfigError, o.input_size >= shrink && o.input_size % shrink == 0, "cosmoflow: input size ",
               o.input_size, " must be a multiple of 2^conv_layers = ", shrink);
  nn::Model m;
  int64_t edge_in = o.input_size;  // the volume's edge at the current layer
  Shape volume{o.in_channels};
  for (int a = 0; a < 3; ++a) volume.push_back(o.spatial ? o.spatial->block_range(a, edge_in).size() : edge_in);
  m.input(volume, "volume");
  int64_t channels = o.in_channels;
  // Split layers while every rank keeps at least one cell of the block's pooled output;
  // deeper blocks are gathered once and run whole on every rank of the group, as the head.
  bool split = bool(o.spatial);
  for (int i = 0; i < o.conv_layers; ++i) {
    nn::ConvOptions c;
    c.padding = 1;
    c.activation = {ops::Activation::leaky_relu, o.leaky_slope};
    const int64_t filters = o.base_filters << i;
    const std::vector<int64_t> global{edge_in, edge_in, edge_in};
    if (split && !fits_grid(*o.spatial, edge_in / 2)) {
      m.append(std::make_shared<nn::SpatialGather>(o.spatial, global), "gather");
      split = false;
    }
    nn::LayerPtr conv, pool;
    if (split) {
      conv = std::make_shared<nn::SpatialConv3d>(o.spatial, global, channels, filters, 3, c);
      pool = std::make_shared<nn::SpatialMaxPool3d>(o.spatial, global, 2);
    } else {
      conv = std::make_shared<nn::Conv3d>(channels, filters, 3, c);
      pool = std::make_shared<nn::MaxPool3d>(2);
    }
    for (auto& p : conv->parameters()) p.weight_decay = false;
    m.append(conv, "conv" + std::to_string(i + 1));
    m.append(pool, "pool" + std::to_string(i + 1));
    channels = filters;
    edge_in /= 2;
  }
  if (split) m.append(std::make_shared<nn::SpatialGather>(o.spatial, std::vector<int64_t>(3, edge_in)), "gather");
  m.append(std::make_shared<nn::Flatten>(), "flatten");
  const int64_t edge = o.input_size / shrink;
  int64_t features = channels * edge * edge * edge;
  for (size_t i = 0; i < o.dense.size(); ++i) {
    const std::string n = std::to_string(i + 1);
    m.append(std::make_shared<nn::Linear>(features, o.dense[i]), "dense" + n);
    m.append(std::make_shared<nn::LeakyReLU>(o.leaky_slope), "act_dense" + n);
    if (o.dropout > 0) m.append(std::make_shared<nn::Dropout>(o.dropout, o.dropout_seed + i), "dropout" + n);
    features = o.dense[i];
  }
  m.append(std::make_shared<nn::Linear>(features, o.outputs), "output");
  m.append(std::make_shared<nn::Tanh>(), "tanh");
  m.append(std::make_shared<nn::Scale>(o.output_scale), "scale");
  m.compile();
  return m;
}

}  // namespace halo::models
