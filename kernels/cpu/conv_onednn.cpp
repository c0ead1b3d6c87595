// f32 convolutions on oneDNN. Activations stay in channels-last (ndhwc) so consecutive
// layers never reorder them; weights are handed to oneDNN in its preferred (blocked)
// format, reordered once per pass from the layer's plain (g)oidhw tensor. Primitives,
// their scratchpads and the blocked weight buffers are created once per plan.
#include <dnnl.hpp>

#include <unordered_map>

#include "cpu/conv.hpp"

namespace halo::kernels::cpu {
namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}
dnnl::stream& stream() {
  static dnnl::stream s(engine());
  return s;
}

struct Dims {
  memory::dims src, wei, dst, bias, strides, dilates, pad_l, pad_r;
  bool grouped = false;
};

Dims dims_of(const ConvGeometry& g) {
  Dims d;
  d.src = {g.N, g.Cin, g.in[0], g.in[1], g.in[2]};
  d.dst = {g.N, g.Cout, g.out[0], g.out[1], g.out[2]};
  d.grouped = g.G > 1;
  if (d.grouped)
    d.wei = {g.G, g.Cout / g.G, g.Cin / g.G, g.k[0], g.k[1], g.k[2]};
  else
    d.wei = {g.Cout, g.Cin, g.k[0], g.k[1], g.k[2]};
  d.bias = {g.Cout};
  for (int i = 0; i < 3; ++i) {
    d.strides.push_back(g.stride[i]);
    d.dilates.push_back(g.dil[i] - 1);  // oneDNN counts the gaps
    d.pad_l.push_back(g.pad[i]);
    // Whatever the high side needs so that the output has exactly g.out points.
    d.pad_r.push_back((g.out[i] - 1) * g.stride[i] + (g.k[i] - 1) * g.dil[i] + 1 - g.in[i] - g.pad[i]);
  }
  return d;
}

memory::desc act_md(const memory::dims& dims) { return memory::desc(dims, dt::f32, tag::ndhwc); }
memory::desc user_wei_md(const Dims& d) { return memory::desc(d.wei, dt::f32, d.grouped ? tag::goidhw : tag::oidhw); }
memory::desc any_wei_md(const Dims& d) { return memory::desc(d.wei, dt::f32, tag::any); }

dnnl::primitive_attr scratch_attr() {
  dnnl::primitive_attr a;
  a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return a;
}

dnnl::convolution_forward::primitive_desc forward_hint(const Dims& d) {
  dnnl::convolution_forward::desc fd(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                                     act_md(d.src), any_wei_md(d), memory::desc(d.bias, dt::f32, tag::x),
                                     act_md(d.dst), d.strides, d.dilates, d.pad_l, d.pad_r);
  return dnnl::convolution_forward::primitive_desc(fd, engine());
}

void* ptr(const Tensor& t) { return t.raw_data(); }

struct ForwardState : ops::detail::ConvPlanState {
  dnnl::convolution_forward::primitive_desc pd;
  dnnl::convolution_forward prim;
  memory user_w, w, scratch;
  dnnl::reorder w_reorder;
  bool reorder_w = false, has_bias = false;
};

struct BackwardDataState : ops::detail::ConvPlanState {
  dnnl::convolution_backward_data::primitive_desc pd;
  dnnl::convolution_backward_data prim;
  memory user_w, w, scratch;
  dnnl::reorder w_reorder;
  bool reorder_w = false;
};

struct BackwardWeightsState : ops::detail::ConvPlanState {
  dnnl::convolution_backward_weights::primitive_desc pd;
  dnnl::convolution_backward_weights prim;
  memory user_gw, gw, own_gb, scratch;
  dnnl::reorder gw_reorder;
  bool reorder_gw = false;
};

}  // namespace

void conv_onednn_forward(StateSlot& slot, const ConvGeometry& g, const Tensor& x, const Tensor& w, const Tensor& bias,
                         const ops::ConvEpilogue& e, const Tensor& y) {
  if (!slot) {
    auto s = std::make_shared<ForwardState>();
    const Dims d = dims_of(g);
    s->has_bias = bias.defined();
    dnnl::primitive_attr attr = scratch_attr();
    if (e.activation != ops::Activation::none) {
      dnnl::post_ops po;
      const float alpha = e.activation == ops::Activation::leaky_relu ? float(e.slope) : 0.0f;
      po.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, alpha, 0.0f);
      attr.set_post_ops(po);
    }
    auto fd = s->has_bias
                  ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training,
                                                    dnnl::algorithm::convolution_direct, act_md(d.src), any_wei_md(d),
                                                    memory::desc(d.bias, dt::f32, tag::x), act_md(d.dst), d.strides,
                                                    d.dilates, d.pad_l, d.pad_r)
                  : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training,
                                                    dnnl::algorithm::convolution_direct, act_md(d.src), any_wei_md(d),
                                                    act_md(d.dst), d.strides, d.dilates, d.pad_l, d.pad_r);
    s->pd = dnnl::convolution_forward::primitive_desc(fd, attr, engine());
    s->prim = dnnl::convolution_forward(s->pd);
    s->scratch = memory(s->pd.scratchpad_desc(), engine());
    const memory::desc uw = user_wei_md(d);
    s->user_w = memory(uw, engine(), nullptr);
    s->reorder_w = s->pd.weights_desc() != uw;
    if (s->reorder_w) {
      s->w = memory(s->pd.weights_desc(), engine());
      s->w_reorder = dnnl::reorder(s->user_w, s->w);
    }
    slot = s;
  }
  auto& s = *static_cast<ForwardState*>(slot.get());
  memory src(s.pd.src_desc(), engine(), ptr(x));
  memory dst(s.pd.dst_desc(), engine(), ptr(y));
  s.user_w.set_data_handle(ptr(w));
  if (s.reorder_w) s.w_reorder.execute(stream(), s.user_w, s.w);
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src},
                                       {DNNL_ARG_WEIGHTS, s.reorder_w ? s.w : s.user_w},
                                       {DNNL_ARG_DST, dst},
                                       {DNNL_ARG_SCRATCHPAD, s.scratch}};
  if (s.has_bias) args[DNNL_ARG_BIAS] = memory(s.pd.bias_desc(), engine(), ptr(bias));
  s.prim.execute(stream(), args);
  stream().wait();
}

void conv_onednn_backward_data(StateSlot& slot, const ConvGeometry& g, const Tensor& gy, const Tensor& w,
                               const Tensor& gx) {
  if (!slot) {
    auto s = std::make_shared<BackwardDataState>();
    const Dims d = dims_of(g);
    dnnl::convolution_backward_data::desc bd(dnnl::algorithm::convolution_direct, act_md(d.src), any_wei_md(d),
                                             act_md(d.dst), d.strides, d.dilates, d.pad_l, d.pad_r);
    s->pd = dnnl::convolution_backward_data::primitive_desc(bd, scratch_attr(), engine(), forward_hint(d));
    s->prim = dnnl::convolution_backward_data(s->pd);
    s->scratch = memory(s->pd.scratchpad_desc(), engine());
    const memory::desc uw = user_wei_md(d);
    s->user_w = memory(uw, engine(), nullptr);
    s->reorder_w = s->pd.weights_desc() != uw;
    if (s->reorder_w) {
      s->w = memory(s->pd.weights_desc(), engine());
      s->w_reorder = dnnl::reorder(s->user_w, s->w);
    }
    slot = s;
  }
  auto& s = *static_cast<BackwardDataState*>(slot.get());
  memory diff_dst(s.pd.diff_dst_desc(), engine(), ptr(gy));
  memory diff_src(s.pd.diff_src_desc(), engine(), ptr(gx));
  s.user_w.set_data_handle(ptr(w));
  if (s.reorder_w) s.w_reorder.execute(stream(), s.user_w, s.w);
  s.prim.execute(stream(), {{DNNL_ARG_DIFF_DST, diff_dst},
                            {DNNL_ARG_WEIGHTS, s.reorder_w ? s.w : s.user_w},
                            {DNNL_ARG_DIFF_SRC, diff_src},
                            {DNNL_ARG_SCRATCHPAD, s.scratch}});
  stream().wait();
}

void conv_onednn_backward_weights(StateSlot& slot, const ConvGeometry& g, const Tensor& x, const Tensor& gy,
                                  const Tensor& gw, const Tensor& gb) {
  if (!slot) {
    auto s = std::make_shared<BackwardWeightsState>();
    const Dims d = dims_of(g);
    // The bias gradient always comes along: it is almost free inside the reduction.
    dnnl::convolution_backward_weights::desc bd(dnnl::algorithm::convolution_direct, act_md(d.src), any_wei_md(d),
                                                memory::desc(d.bias, dt::f32, tag::x), act_md(d.dst), d.strides,
                                                d.dilates, d.pad_l, d.pad_r);
    s->pd = dnnl::convolution_backward_weights::primitive_desc(bd, scratch_attr(), engine(), forward_hint(d));
    s->prim = dnnl::convolution_backward_weights(s->pd);
    s->scratch = memory(s->pd.scratchpad_desc(), engine());
    s->own_gb = memory(s->pd.diff_bias_desc(), engine());
    const memory::desc uw = user_wei_md(d);
    s->user_gw = memory(uw, engine(), nullptr);
    s->reorder_gw = s->pd.diff_weights_desc() != uw;
    if (s->reorder_gw) {
      s->gw = memory(s->pd.diff_weights_desc(), engine());
      s->gw_reorder = dnnl::reorder(s->gw, s->user_gw);
    }
    slot = s;
  }
  auto& s = *static_cast<BackwardWeightsState*>(slot.get());
  memory src(s.pd.src_desc(), engine(), ptr(x));
  memory diff_dst(s.pd.diff_dst_desc(), engine(), ptr(gy));
  s.user_gw.set_data_handle(ptr(gw));
  memory diff_bias = gb.defined() ? memory(s.pd.diff_bias_desc(), engine(), ptr(gb)) : s.own_gb;
  s.prim.execute(stream(), {{DNNL_ARG_SRC, src},
                            {DNNL_ARG_DIFF_DST, diff_dst},
                            {DNNL_ARG_DIFF_WEIGHTS, s.reorder_gw ? s.gw : s.user_gw},
                            {DNNL_ARG_DIFF_BIAS, diff_bias},
                            {DNNL_ARG_SCRATCHPAD, s.scratch}});
  if (s.reorder_gw) s.gw_reorder.execute(stream(), s.gw, s.user_gw);
  stream().wait();
}

}  // namespace halo::kernels::cpu
