#include "halo/models/cosmoflow.hpp"

#include <memory>

#include "halo/nn/activation.hpp"
#include "halo/nn/conv.hpp"
#include "halo/nn/dropout.hpp"
#include "halo/nn/linear.hpp"
#include "halo/nn/pool.hpp"
#include "halo/nn/structure.hpp"

namespace halo::models {

nn::Model cosmoflow(const CosmoFlowOptions& o) {
  HALO_CHECK_T(ConfigError, o.conv_layers >= 1, "cosmoflow: conv_layers must be at least 1");
  const int64_t shrink = int64_t(1) << o.conv_layers;
  HALO_CHECK_T(ConfigError, o.input_size >= shrink && o.input_size % shrink == 0, "cosmoflow: input size ",
               o.input_size, " must be a multiple of 2^conv_layers = ", shrink);
  nn::Model m;
  m.input({o.in_channels, o.input_size, o.input_size, o.input_size}, "volume");
  int64_t channels = o.in_channels;
  for (int i = 0; i < o.conv_layers; ++i) {
    nn::ConvOptions c;
    c.padding = 1;
    c.activation = {ops::Activation::leaky_relu, o.leaky_slope};
    const int64_t filters = o.base_filters << i;
    auto conv = std::make_shared<nn::Conv3d>(channels, filters, 3, c);
    for (auto& p : conv->parameters()) p.weight_decay = false;
    m.append(conv, "conv" + std::to_string(i + 1));
    m.append(std::make_shared<nn::MaxPool3d>(2), "pool" + std::to_string(i + 1));
    channels = filters;
  }
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
