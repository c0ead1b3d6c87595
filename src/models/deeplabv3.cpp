#include "halo/models/deeplabv3.hpp"

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>

#include "halo/nn/activation.hpp"
#include "halo/nn/conv.hpp"
#include "halo/nn/pool.hpp"
#include "halo/nn/structure.hpp"
#include "halo/nn/upsample.hpp"
#include "halo/util/error.hpp"

namespace halo::models {
namespace {

// Adds layers to the model; every helper takes the node it starts from and returns the
// node it ends at, so the graph reads like the reference's forward().
class Builder {
 public:
  Builder(nn::Model& m, const DeepLabV3PlusOptions& o) : m_(m), o_(o) {}

  int64_t ch(int64_t reference) const {
    return std::max<int64_t>(4, int64_t(std::llround(double(reference) * o_.channel_scale)));
  }

  int conv(int from, int64_t in, int64_t out, int64_t kernel, const std::string& name, int64_t stride = 1,
           int64_t dilation = 1, int64_t groups = 1, bool bias = false) {
    nn::ConvOptions c;
    c.stride = stride;
    c.dilation = dilation;
    c.padding = dilation * (kernel - 1) / 2;  // "same" for odd kernels
    c.groups = groups;
    c.bias = bias;
    return m_.add(std::make_shared<nn::Conv2d>(in, out, kernel, c), from, name);
  }
  /// Transposed 3x3, stride 2, padding 1, output padding 1: exactly doubles H and W.
  int deconv(int from, int64_t in, int64_t out, const std::string& name) {
    nn::ConvOptions c;
    c.stride = 2;
    c.padding = 1;
    c.output_padding = 1;
    c.bias = false;
    return m_.add(std::make_shared<nn::ConvTranspose2d>(in, out, 3, c), from, name);
  }
  int bn(int from, int64_t channels, const std::string& name) {
    return m_.add(std::make_shared<nn::BatchNorm2d>(channels, o_.bn_eps, o_.bn_momentum), from, name);
  }
  int relu(int from, const std::string& name) { return m_.add(std::make_shared<nn::ReLU>(), from, name); }
  /// BatchNorm then ReLU as one fused layer named "<prefix>.bn" (parameters "<prefix>.bn/weight"
  /// as in the reference): one pass over the tensor instead of two forward, two instead of
  /// three backward.
  int bn_relu(int from, int64_t channels, const std::string& prefix) {
    auto layer = std::make_shared<nn::BatchNorm2d>(channels, o_.bn_eps, o_.bn_momentum);
    layer->set_fused_relu(true);
    return m_.add(layer, from, prefix + ".bn");
  }
  /// Depthwise 3x3 (same padding at any dilation) then pointwise 1x1, no biases.
  int separable(int from, int64_t in, int64_t out, const std::string& name, int64_t stride = 1,
                int64_t dilation = 1) {
    int x = conv(from, in, in, 3, name + ".depthwise", stride, dilation, in);
    return conv(x, in, out, 1, name + ".pointwise");
  }

  struct BlockSpec {
    int reps = 2;
    int64_t stride = 1;
    int64_t dilation = 1;
    bool end_with_relu = true;
    bool grow_first = true;
    bool is_last = false;
  };
  int block(int from, int64_t in, int64_t planes, const BlockSpec& s, const std::string& name) {
    // The separable stack: [sep -> BN -> ReLU] per rep, the last ReLU dropped.
    struct Step {
      int64_t in, out;
    };
    std::vector<Step> steps;
    int64_t filters = in;
    if (s.grow_first) {
      steps.push_back({in, planes});
      filters = planes;
    }
    for (int i = 0; i < s.reps - 1; ++i) steps.push_back({filters, filters});
    if (!s.grow_first) steps.push_back({in, planes});
    int x = from;
    for (size_t i = 0; i < steps.size(); ++i) {
      const std::string sep = name + ".sep" + std::to_string(i + 1);
      x = separable(x, steps[i].in, steps[i].out, sep, 1, s.dilation);
      x = i + 1 < steps.size() ? bn_relu(x, steps[i].out, sep) : bn(x, steps[i].out, sep + ".bn");
    }
    if (s.stride != 1)
      x = separable(x, planes, planes, name + ".down", s.stride);
    else if (s.is_last)
      x = separable(x, planes, planes, name + ".last");
    int skip = from;
    if (planes != in || s.stride != 1) {
      skip = conv(from, in, planes, 1, name + ".skip", s.stride);
      skip = bn(skip, planes, name + ".skip.bn");
    }
    x = m_.add(std::make_shared<nn::Add>(), {x, skip}, name + ".add");
    if (s.end_with_relu) x = relu(x, name + ".relu");
    return x;
  }

 private:
  nn::Model& m_;
  const DeepLabV3PlusOptions& o_;
};

}  // namespace

nn::Model deeplabv3_plus(const DeepLabV3PlusOptions& o) {
  HALO_CHECK_T(ConfigError, o.height > 0 && o.width > 0 && o.height % 16 == 0 && o.width % 16 == 0,
               "deeplabv3_plus: the input is ", o.height, "x", o.width,
               " but height and width must be positive multiples of 16 (the encoder's output stride)");
  HALO_CHECK_T(ConfigError, o.middle_blocks >= 0, "deeplabv3_plus: middle_blocks must be >= 0");
  HALO_CHECK_T(ConfigError, o.channel_scale > 0, "deeplabv3_plus: channel_scale must be > 0");
  HALO_CHECK_T(ConfigError, o.in_channels > 0 && o.classes > 1, "deeplabv3_plus: need in_channels > 0 and classes > 1");
  nn::Model m;
  Builder b(m, o);
  const int64_t c32 = b.ch(32), c64 = b.ch(64), c128 = b.ch(128), c256 = b.ch(256), c728 = b.ch(728);
  const int64_t c1024 = b.ch(1024), c1536 = b.ch(1536), c2048 = b.ch(2048), c48 = b.ch(48);
  const int64_t aspp = b.ch(256), dec = b.ch(256);

  // ---- encoder: entry flow ----
  int x = m.input({o.in_channels, o.height, o.width}, "fields");
  x = b.conv(x, o.in_channels, c32, 3, "entry.conv1", 2);
  x = b.bn_relu(x, c32, "entry.conv1");
  x = b.conv(x, c32, c64, 3, "entry.conv2");
  x = b.bn_relu(x, c64, "entry.conv2");
  x = b.block(x, c64, c128, {2, 2, 1, false, true, false}, "block1");
  x = b.relu(x, "block1.relu");  // the reference's in-place ReLU also rectifies the low-level copy
  const int low_level = x;
  x = b.block(x, c128, c256, {2, 2, 1, true, true, false}, "block2");
  x = b.block(x, c256, c728, {2, 2, 1, true, true, true}, "block3");
  // ---- middle flow ----
  for (int i = 0; i < o.middle_blocks; ++i)
    x = b.block(x, c728, c728, {3, 1, 1, true, true, false}, "block" + std::to_string(4 + i));
  // ---- exit flow ----
  x = b.block(x, c728, c1024, {2, 1, 1, false, false, true}, "exit.block");
  x = b.separable(x, c1024, c1536, "exit.sep1", 1, o.exit_dilation);
  x = b.bn_relu(x, c1536, "exit.sep1");
  x = b.separable(x, c1536, c1536, "exit.sep2", 1, o.exit_dilation);
  x = b.bn_relu(x, c1536, "exit.sep2");
  x = b.separable(x, c1536, c2048, "exit.sep3", 1, o.exit_dilation);
  const int features = b.bn_relu(x, c2048, "exit.sep3");

  // ---- ASPP ----
  std::vector<int> branches;
  branches.push_back(b.bn_relu(b.conv(features, c2048, aspp, 1, "aspp.rate1"), aspp, "aspp.rate1"));
  for (int64_t r : o.aspp_rates) {
    const std::string n = "aspp.rate" + std::to_string(r);
    branches.push_back(b.bn_relu(b.conv(features, c2048, aspp, 3, n, 1, r), aspp, n));
  }
  int pooled = m.add(std::make_shared<nn::GlobalAvgPool>(true), features, "aspp.pool");
  pooled = b.conv(pooled, c2048, aspp, 1, "aspp.pool.conv", 1, 1, 1, /*bias=*/true);
  pooled = b.relu(pooled, "aspp.pool.relu");
  pooled = m.add(std::make_shared<nn::Upsample>(nn::Upsample::to_size({o.height / 16, o.width / 16})), pooled,
                 "aspp.pool.spread");
  branches.push_back(pooled);
  x = m.add(std::make_shared<nn::Concat>(), branches, "aspp.concat");
  x = b.conv(x, aspp * int64_t(branches.size()), aspp, 1, "aspp.project");
  x = b.bn_relu(x, aspp, "aspp.project");

  // ---- decoder ----
  int low = b.conv(low_level, c128, c48, 1, "decoder.low");
  low = b.bn_relu(low, c48, "decoder.low");
  x = b.deconv(x, aspp, dec, "decoder.up1");
  x = b.bn_relu(x, dec, "decoder.up1");
  x = b.deconv(x, dec, dec, "decoder.up2");
  x = b.bn_relu(x, dec, "decoder.up2");
  x = m.add(std::make_shared<nn::Concat>(), {x, low}, "decoder.concat");
  x = b.conv(x, dec + c48, dec, 3, "decoder.conv1");
  x = b.bn_relu(x, dec, "decoder.conv1");
  x = b.conv(x, dec, dec, 3, "decoder.conv2");
  x = b.bn_relu(x, dec, "decoder.conv2");
  x = b.conv(x, dec, dec, 1, "decoder.conv3", 1, 1, 1, /*bias=*/true);
  x = b.deconv(x, dec, dec, "decoder.up3");
  x = b.bn_relu(x, dec, "decoder.up3");
  x = b.deconv(x, dec, o.classes, "decoder.logits");
  m.set_output(x);
  m.compile();
  return m;
}

std::vector<nn::BatchNormNd*> batchnorm_layers(nn::Model& model) {
  std::vector<nn::BatchNormNd*> out;
  for (const auto& n : model.nodes())
    if (auto* bn = dynamic_cast<nn::BatchNormNd*>(n.layer.get())) out.push_back(bn);
  return out;
}

}  // namespace halo::models
