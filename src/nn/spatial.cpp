// Spatially split layers: the ordinary layer run on this rank's window of the volume.
#include <memory>

#include "halo/nn/model.hpp"
#include "halo/nn/spatial.hpp"
#include "halo/ops/elementwise.hpp"
#include "halo/util/timer.hpp"

namespace halo::nn {

namespace {

std::vector<bool> split_axes(const SpatialGroup& g, size_t nd) {
  std::vector<bool> r(nd);
  const auto p = g.parts();
  for (size_t a = 0; a < nd; ++a) r[a] = p[a] > 1;
  return r;
}

// The layer's own padding on axes that are not split; zero on split ones (the window has it).
std::vector<int64_t> inner_padding(const SpatialGroup& g, size_t nd, int64_t padding) {
  std::vector<int64_t> r(nd, padding);
  const auto split = split_axes(g, nd);
  for (size_t a = 0; a < nd; ++a)
    if (split[a]) r[a] = 0;
  return r;
}

Shape local_output(const HaloWindow& w, const Shape& x, int64_t channels) {
  w.check_block(x);
  Shape y = x;
  y[1] = channels;
  for (int a = 0; a < w.spatial_dims(); ++a) y[size_t(2 + a)] = w.own_out(a).size();
  return y;
}

// The shape of this rank's window for a block `x`.
Shape window_shape(const HaloWindow& w, const Shape& x, const std::vector<bool>& halo) {
  Shape s = x;
  for (int a = 0; a < w.spatial_dims(); ++a)
    if (halo[size_t(a)]) s[size_t(2 + a)] = w.want(a).size();
  return s;
}

// Runs `backward` with this rank's parameter gradients going to scratch tensors, sums
// those over the group (every rank's block contributes to the same parameters) and adds
// the sums to the accumulated gradients (accumulation over micro-batches adds each
// backward's sum once). Adds the time of the sums to `exchange_s`. The scratch lives for
// this call only: a member would keep a copy of every convolution's gradient per rank.
template <typename F>
std::vector<Tensor> backward_summing_parameter_gradients(SpatialGroup& group, std::vector<Parameter>& params,
                                                         double& exchange_s, F&& backward) {
  std::vector<Tensor> scratch(params.size()), kept(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    scratch[i] = Tensor::zeros_like(params[i].grad);
    kept[i] = params[i].grad;
    params[i].grad = scratch[i];
  }
  std::vector<Tensor> gx;
  try {
    gx = backward();
  } catch (...) {
    for (size_t i = 0; i < params.size(); ++i) params[i].grad = kept[i];
    throw;
  }
  for (size_t i = 0; i < params.size(); ++i) params[i].grad = kept[i];
  const double t0 = now_seconds();
  for (size_t i = 0; i < params.size(); ++i) {
    group.allreduce_sum(scratch[i]);
    ops::axpy_(params[i].grad, 1.0, scratch[i]);
  }
  exchange_s += now_seconds() - t0;
  return gx;
}

}  // namespace

// ---- convolution ----

SpatialConvNd::SpatialConvNd(std::shared_ptr<SpatialGroup> group, std::vector<int64_t> global_input,
                             int64_t in_channels, int64_t out_channels, std::vector<int64_t> kernel,
                             const ConvOptions& o)
    : ConvNd(int(kernel.size()), false, in_channels, out_channels, kernel, o,
             inner_padding(*group, kernel.size(), o.padding)),
      group_(std::move(group)) {
  const size_t nd = kernel.size();
  HALO_CHECK_T(ConfigError, global_input.size() == nd, "SpatialConv: ", global_input.size(),
               " global extents for a ", nd, "D kernel");
  window_ = HaloWindow(*group_, std::move(global_input), kernel, std::vector<int64_t>(nd, o.stride),
                       std::vector<int64_t>(nd, o.padding), std::vector<int64_t>(nd, o.dilation),
                       split_axes(*group_, nd), "SpatialConv" + std::to_string(nd) + "d");
}

std::string SpatialConvNd::type() const { return "SpatialConv" + std::to_string(kernel().size()) + "d"; }

Shape SpatialConvNd::output_shape(const std::vector<Shape>& inputs) const {
  expect_inputs(inputs, 1);
  HALO_CHECK_SHAPE(inputs[0].size() >= 2 && inputs[0][1] == in_channels(), describe(), ": input ",
                   to_string(inputs[0]), " should have ", in_channels(), " channels");
  return local_output(window_, inputs[0], out_channels());
}

Tensor SpatialConvNd::forward(const std::vector<Tensor>& inputs) {
  HALO_CHECK_SHAPE(inputs.size() == 1 && inputs[0].defined(), describe(), ": expected 1 defined input");
  const double t0 = now_seconds();
  Tensor xw = window_.gather(*group_, inputs[0]);
  exchange_s_ += now_seconds() - t0;
  return ConvNd::forward(std::vector<Tensor>{xw});  // not Layer::forward(Tensor): that would dispatch back here
}

std::vector<Tensor> SpatialConvNd::backward(const Tensor& grad_output) {
  std::vector<Tensor> gx = backward_summing_parameter_gradients(
      *group_, params_, exchange_s_, [&] { return ConvNd::backward(grad_output); });
  const double t0 = now_seconds();
  if (gx.at(0).defined()) gx[0] = window_.scatter_add(*group_, gx[0]);
  exchange_s_ += now_seconds() - t0;
  return gx;
}

double SpatialConvNd::forward_flops(const std::vector<Shape>& inputs) const {
  expect_inputs(inputs, 1);
  return ConvNd::forward_flops({window_shape(window_, inputs[0], split_axes(*group_, kernel().size()))});
}

// ---- pooling ----

SpatialPoolNd::SpatialPoolNd(std::shared_ptr<SpatialGroup> group, std::vector<int64_t> global_input,
                             ops::PoolConfig cfg)
    : PoolNd(cfg), group_(std::move(group)) {
  const size_t nd = cfg.kernel.size();
  HALO_CHECK_T(ConfigError, global_input.size() == nd, "SpatialPool: ", global_input.size(),
               " global extents for a ", nd, "D window");
  const auto split = split_axes(*group_, nd);
  for (size_t a = 0; a < nd; ++a)
    HALO_CHECK_T(ConfigError, !split[a] || cfg.padding[a] == 0, "SpatialPool: padding ", cfg.padding[a],
                 " along split axis ", a, " is not supported (pad the volume or split another axis)");
  window_ = HaloWindow(*group_, std::move(global_input), cfg.kernel, cfg.stride, cfg.padding,
                       std::vector<int64_t>(nd, 1), split, "Spatial" + PoolNd::type());
}

std::string SpatialPoolNd::type() const { return "Spatial" + PoolNd::type(); }

Shape SpatialPoolNd::output_shape(const std::vector<Shape>& inputs) const {
  expect_inputs(inputs, 1);
  HALO_CHECK_SHAPE(inputs[0].size() >= 2, describe(), ": input ", to_string(inputs[0]), " has no channel axis");
  return local_output(window_, inputs[0], inputs[0][1]);
}

Tensor SpatialPoolNd::forward(const std::vector<Tensor>& inputs) {
  HALO_CHECK_SHAPE(inputs.size() == 1 && inputs[0].defined(), describe(), ": expected 1 defined input");
  const double t0 = now_seconds();
  Tensor xw = window_.gather(*group_, inputs[0]);
  exchange_s_ += now_seconds() - t0;
  return PoolNd::forward(std::vector<Tensor>{xw});
}

std::vector<Tensor> SpatialPoolNd::backward(const Tensor& grad_output) {
  std::vector<Tensor> gx = PoolNd::backward(grad_output);
  const double t0 = now_seconds();
  if (gx.at(0).defined()) gx[0] = window_.scatter_add(*group_, gx[0]);
  exchange_s_ += now_seconds() - t0;
  return gx;
}

double SpatialPoolNd::forward_flops(const std::vector<Shape>& inputs) const {
  expect_inputs(inputs, 1);
  return PoolNd::forward_flops({window_shape(window_, inputs[0], split_axes(*group_, config().kernel.size()))});
}

// ---- BatchNorm over the whole volume ----

SpatialBatchNormNd::SpatialBatchNormNd(std::shared_ptr<SpatialGroup> group, int spatial_dims, int64_t channels,
                                       double eps, double momentum, DType dtype)
    : BatchNormNd(spatial_dims, channels, eps, momentum, dtype), group_(std::move(group)) {
  // The per-channel sums of forward and backward, summed over the group: statistics of
  // the whole volume. The group outlives the layer's use of it (the layer holds it).
  SpatialGroup* g = group_.get();
  set_stats_reducer([g](double* values, size_t n) {
    Tensor t = Tensor::from_blob(values, {int64_t(n)}, DType::f64, Device::cpu(), {}, [] {});
    g->allreduce_sum(t);
  });
}

std::vector<Tensor> SpatialBatchNormNd::backward(const Tensor& grad_output) {
  return backward_summing_parameter_gradients(*group_, params_, exchange_s_,
                                              [&] { return BatchNormNd::backward(grad_output); });
}

// ---- gather to the whole volume ----

SpatialGather::SpatialGather(std::shared_ptr<SpatialGroup> group, std::vector<int64_t> global_input)
    : group_(std::move(group)) {
  window_ = HaloWindow::whole_volume(*group_, std::move(global_input), "SpatialGather");
}

Shape SpatialGather::output_shape(const std::vector<Shape>& inputs) const {
  expect_inputs(inputs, 1);
  HALO_CHECK_SHAPE(inputs[0].size() >= 2, describe(), ": input ", to_string(inputs[0]), " has no channel axis");
  return local_output(window_, inputs[0], inputs[0][1]);
}

Tensor SpatialGather::forward(const std::vector<Tensor>& inputs) {
  HALO_CHECK_SHAPE(inputs.size() == 1 && inputs[0].defined(), describe(), ": expected 1 defined input");
  const double t0 = now_seconds();
  Tensor y = window_.gather(*group_, inputs[0]);
  exchange_s_ += now_seconds() - t0;
  return y;
}

std::vector<Tensor> SpatialGather::backward(const Tensor& grad_output) {
  if (!input_needs_grad(0)) return {Tensor()};
  return {window_.own_block(grad_output)};
}

Tensor spatial_block(const SpatialGroup& group, const Tensor& whole) {
  HALO_CHECK_SHAPE(whole.dim() >= 3 && whole.dim() <= 5, "spatial_block: ", whole.str(),
                   " should be (N, C, spatial...)");
  const Shape& s = whole.shape();
  return HaloWindow::whole_volume(group, std::vector<int64_t>(s.begin() + 2, s.end()), "spatial_block").own_block(whole);
}

double spatial_exchange_seconds(Model& model, bool reset) {
  double s = 0;
  for (const auto& node : model.nodes())
    if (auto* c = dynamic_cast<SpatialExchangeClock*>(node.layer.get())) {
      s += c->exchange_seconds();
      if (reset) c->reset_exchange_seconds();
    }
  return s;
}

}  // namespace halo::nn
