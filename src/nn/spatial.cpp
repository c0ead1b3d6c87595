// Spatially split layers: the ordinary layer run on this rank's window of the volume.
#include <algorithm>
#include <exception>
#include <map>
#include <memory>
#include <thread>

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
  window_.check_block(inputs[0].shape());
  if (Tensor y = forward_overlapped(inputs[0]); y.defined()) return y;
  const double t0 = now_seconds();
  Tensor xw = window_.gather(*group_, inputs[0]);
  exchange_s_ += now_seconds() - t0;
  return ConvNd::forward(std::vector<Tensor>{xw});  // not Layer::forward(Tensor): that would dispatch back here
}

// The output block in pieces while the halo travels: a helper thread receives the halo into
// the window buffer; this thread meanwhile convolves the block itself, which gives every
// output cell whose receptive field lies inside the block (the interior); once the halo is
// in, the boundary shell is convolved from thin slabs of the window. Backward then sees the
// window and the assembled output as the unsplit-style forward would have left them.
// Undefined when the geometry or the group does not allow it (the caller then gathers first).
Tensor SpatialConvNd::forward_overlapped(const Tensor& x) {
  if (!group_->concurrent_exchange() || !x.device().is_cpu() || x.dtype() != weight().value.dtype()) return Tensor();
  // Each piece has its own plan, and a plan keeps the weights in the kernel's layout: where
  // the weights outweigh the block (the deep layers, whose halos are a few kB anyway) the
  // copies would cost more memory than the overlap saves time.
  if (x.nbytes() < 8 * weight().value.nbytes()) return Tensor();
  const HaloWindow& W = window_;
  const int nd = W.spatial_dims();
  // Per exchanging axis: the interior of the output block and where the block's own
  // convolution (no padding there) starts in global output coordinates.
  std::vector<IndexRange> interior(static_cast<size_t>(nd));
  std::vector<int64_t> first(static_cast<size_t>(nd), 0);
  bool any = false;
  for (int a = 0; a < nd; ++a) {
    interior[size_t(a)] = W.own_out(a);
    if (!W.exchanges(a)) continue;
    any = true;
    const HaloWindow::Interior in = W.interior(a);
    if (in.cells.size() <= 0) return Tensor();  // misaligned or too thin: gather first
    interior[size_t(a)] = in.cells;
    first[size_t(a)] = in.first;
  }
  if (!any) return Tensor();

  const double t0 = now_seconds();
  Tensor buffer = W.prepare(x);
  std::exception_ptr failed;
  double halo_s = 0;
  std::thread halo([&] {
    const double h0 = now_seconds();
    try {
      W.fill_halos(*group_, buffer);
    } catch (...) {
      failed = std::current_exception();
    }
    halo_s = now_seconds() - h0;
  });
  const double t1 = now_seconds();
  const Tensor& w = weight().value;
  const Tensor bias = has_bias() ? params_.at(1).value : Tensor();
  Tensor yi;
  try {
    yi = ops::conv_forward(piece_plan(x), x, w, bias);
  } catch (...) {
    halo.join();
    throw;
  }
  const double t2 = now_seconds();
  halo.join();
  if (failed) std::rethrow_exception(failed);
  const double t3 = now_seconds();
  const Tensor xw = W.window_of(buffer);

  // The output block: the interior from yi, then the shell, axis after axis (for axis a the
  // cells outside the interior along a and inside it along the earlier exchanging axes).
  Shape ys = yi.shape();
  for (int a = 0; a < nd; ++a) ys[size_t(2 + a)] = W.own_out(a).size();
  Tensor y = Tensor::empty(ys, yi.dtype(), Device::cpu(), yi.memory_format());
  {
    Tensor dst = y, src = yi;
    for (int a = 0; a < nd; ++a) {
      if (!W.exchanges(a)) continue;
      const IndexRange r = interior[size_t(a)], out = W.own_out(a);
      dst = axis_view(dst, 2 + a, r.begin - out.begin, r.size());
      src = axis_view(src, 2 + a, r.begin - first[size_t(a)], r.size());
    }
    dst.copy_(src);
  }
  for (int a = 0; a < nd; ++a) {
    if (!W.exchanges(a)) continue;
    const IndexRange out = W.own_out(a), r = interior[size_t(a)];
    for (const IndexRange side : {IndexRange{out.begin, r.begin}, IndexRange{r.end, out.end}}) {
      if (side.size() <= 0) continue;
      // The slab's output box and the window cells it reads.
      Tensor dst = y, in = xw;
      for (int b = 0; b < nd; ++b) {
        if (!W.exchanges(b)) continue;
        const IndexRange o = b == a ? side : b < a ? interior[size_t(b)] : W.own_out(b), r = W.receptive(b, o);
        dst = axis_view(dst, 2 + b, o.begin - W.own_out(b).begin, o.size());
        in = axis_view(in, 2 + b, r.begin - W.want(b).begin, r.size());
      }
      Tensor slab = Tensor::empty(in.shape(), in.dtype(), Device::cpu(), xw.memory_format());
      slab.copy_(in);
      dst.copy_(ops::conv_forward(piece_plan(slab), slab, w, bias));
    }
  }
  remember_forward(xw, y);
  // Exposed: building the buffer and what the halo still took after the interior.
  exchange_s_ += (t1 - t0) + (t3 - t2);
  hidden_s_ += std::max(0.0, halo_s - (t3 - t2));
  ++overlapped_;
  return y;
}

ops::ConvPlan& SpatialConvNd::piece_plan(const Tensor& x) {
  auto it = piece_plans_.find(x.shape());
  if (it == piece_plans_.end() || !it->second.matches(x.shape(), x.dtype()))
    it = piece_plans_.insert_or_assign(x.shape(), make_plan(x)).first;
  return it->second;
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

double spatial_exchange_seconds(Model& model, bool reset, double* hidden) {
  double s = 0;
  if (hidden) *hidden = 0;
  for (const auto& node : model.nodes())
    if (auto* c = dynamic_cast<SpatialExchangeClock*>(node.layer.get())) {
      s += c->exchange_seconds();
      if (hidden) *hidden += c->hidden_exchange_seconds();
      if (reset) c->reset_exchange_seconds();
    }
  return s;
}

}  // namespace halo::nn
