// f32 and bf16 convolutions on oneDNN. Activations stay in channels-last (ndhwc) so
// consecutive layers never reorder them; weights are handed to oneDNN in its preferred
// (blocked) format, reordered once per pass from the layer's plain (g)oidhw tensor.
// Primitives, their scratchpads and the blocked weight buffers are created once per plan.
//
// bf16 (mixed precision): activations and their gradients are bf16; the weights stay f32
// masters, and the reorder into the primitive's format is also the cast to bf16; bias, weight
// and bias gradients are f32 (oneDNN accumulates in f32 throughout).
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
  dt act = dt::f32;  ///< activations' type, and the type the weights are computed in
};

dt onednn_type(DType t) {
  HALO_CHECK_SHAPE(t == DType::f32 || t == DType::bf16, "oneDNN convolution: activations must be f32 or bf16, got ",
                   name(t));
  return t == DType::bf16 ? dt::bf16 : dt::f32;
}

Dims dims_of(const ConvGeometry& g, DType act) {
  // 2D problems get 2D descriptors: oneDNN's fastest kernels (1x1, depthwise) are written
  // for nhwc and fall back to far slower ones on a 3D problem of depth 1.
  // Except strided 1x1 layers (DeepLabv3+'s skip convolutions): oneDNN 2.6's nhwc kernel
  // for them corrupts memory on grids of 40+ rows with few channels (a stride-2 1x1
  // convolution of 4 -> 8 channels on 48x72 crashes), and they are a negligible share of
  // the step, so they keep the depth-1 3D description.
  const bool strided_1x1 = g.k[1] == 1 && g.k[2] == 1 && (g.stride[1] > 1 || g.stride[2] > 1);
  const int first = g.spatial_dims == 2 && !strided_1x1 ? 1 : 0;
  Dims d;
  d.act = onednn_type(act);
  d.src = {g.N, g.Cin};
  d.dst = {g.N, g.Cout};
  d.grouped = g.G > 1;
  if (d.grouped)
    d.wei = {g.G, g.Cout / g.G, g.Cin / g.G};
  else
    d.wei = {g.Cout, g.Cin};
  d.bias = {g.Cout};
  for (int i = first; i < 3; ++i) {
    d.src.push_back(g.in[i]);
    d.dst.push_back(g.out[i]);
    d.wei.push_back(g.k[i]);
    d.strides.push_back(g.stride[i]);
    d.dilates.push_back(g.dil[i] - 1);  // oneDNN counts the gaps
    d.pad_l.push_back(g.pad[i]);
    // Whatever the high side needs so that the output has exactly g.out points.
    d.pad_r.push_back((g.out[i] - 1) * g.stride[i] + (g.k[i] - 1) * g.dil[i] + 1 - g.in[i] - g.pad[i]);
  }
  return d;
}

memory::desc act_md(const memory::dims& dims, dt type) {
  return memory::desc(dims, type, dims.size() == 4 ? tag::nhwc : tag::ndhwc);
}
memory::desc act_md_for(const memory::dims& dims, dt type, bool blocked);
memory::desc user_wei_md(const Dims& d) {
  const bool two_d = d.src.size() == 4;
  const tag t = d.grouped ? (two_d ? tag::goihw : tag::goidhw) : (two_d ? tag::oihw : tag::oidhw);
  return memory::desc(d.wei, dt::f32, t);
}
/// The weights as the primitive computes with them (bf16 under bf16 activations).
memory::desc any_wei_md(const Dims& d) { return memory::desc(d.wei, d.act, tag::any); }
/// The weight gradient: always f32, like the master weights it updates.
memory::desc any_grad_wei_md(const Dims& d) { return memory::desc(d.wei, dt::f32, tag::any); }

dnnl::primitive_attr scratch_attr() {
  dnnl::primitive_attr a;
  a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return a;
}

dnnl::convolution_forward::primitive_desc forward_hint(const Dims& d, bool blocked) {
  dnnl::convolution_forward::desc fd(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                                     act_md_for(d.src, d.act, blocked), any_wei_md(d),
                                     memory::desc(d.bias, dt::f32, tag::x), act_md_for(d.dst, d.act, blocked),
                                     d.strides, d.dilates, d.pad_l, d.pad_r);
  return dnnl::convolution_forward::primitive_desc(fd, engine());
}

void* ptr(const Tensor& t) { return t.raw_data(); }

memory::desc act_md_for(const memory::dims& dims, dt type, bool blocked) {
  return blocked ? memory::desc(dims, type, tag::any) : act_md(dims, type);
}

/// An activation handed to a primitive that may want it in a blocked format: the
/// channels-last user tensor is wrapped, and reordered through a plan-owned buffer
/// when the primitive chose another format.
struct Staged {
  memory user, own;
  dnnl::reorder r;
  bool reorder = false;
  void init(const memory::dims& dims, const memory::desc& chosen, bool into_primitive) {
    user = memory(act_md(dims, chosen.data_type()), engine(), nullptr);
    reorder = chosen != user.get_desc();
    if (reorder) {
      own = memory(chosen, engine());
      r = into_primitive ? dnnl::reorder(user, own) : dnnl::reorder(own, user);
    }
  }
  /// The memory to give the primitive (reordering an input first).
  memory in(const Tensor& t) {
    user.set_data_handle(ptr(t));
    if (!reorder) return user;
    r.execute(stream(), user, own);
    return own;
  }
  memory out(const Tensor& t) {
    user.set_data_handle(ptr(t));
    return reorder ? own : user;
  }
  void finish_out() {
    if (reorder) r.execute(stream(), own, user);
  }
};

struct ForwardState : ops::detail::ConvPlanState {
  Staged src, dst;
  dnnl::convolution_forward::primitive_desc pd;
  dnnl::convolution_forward prim;
  memory user_w, w, scratch;
  dnnl::reorder w_reorder;
  bool reorder_w = false, has_bias = false;
};

struct BackwardDataState : ops::detail::ConvPlanState {
  Staged diff_dst, diff_src;
  dnnl::convolution_backward_data::primitive_desc pd;
  dnnl::convolution_backward_data prim;
  memory user_w, w, scratch;
  dnnl::reorder w_reorder;
  bool reorder_w = false;
};

struct BackwardWeightsState : ops::detail::ConvPlanState {
  Staged src, diff_dst;
  dnnl::convolution_backward_weights::primitive_desc pd;
  dnnl::convolution_backward_weights prim;
  memory user_gw, gw, own_gb, scratch;
  dnnl::reorder gw_reorder;
  bool reorder_gw = false;
};

}  // namespace

void conv_onednn_forward(StateSlot& slot, const ConvGeometry& g, const Tensor& x, const Tensor& w, const Tensor& bias,
                         const ops::ConvEpilogue& e, const Tensor& y, bool blocked) {
  if (!slot) {
    auto s = std::make_shared<ForwardState>();
    const Dims d = dims_of(g, x.dtype());
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
                                                    dnnl::algorithm::convolution_direct,
                                                    act_md_for(d.src, d.act, blocked), any_wei_md(d),
                                                    memory::desc(d.bias, dt::f32, tag::x),
                                                    act_md_for(d.dst, d.act, blocked), d.strides, d.dilates,
                                                    d.pad_l, d.pad_r)
                  : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training,
                                                    dnnl::algorithm::convolution_direct,
                                                    act_md_for(d.src, d.act, blocked), any_wei_md(d),
                                                    act_md_for(d.dst, d.act, blocked), d.strides, d.dilates,
                                                    d.pad_l, d.pad_r);
    s->pd = dnnl::convolution_forward::primitive_desc(fd, attr, engine());
    s->prim = dnnl::convolution_forward(s->pd);
    s->src.init(d.src, s->pd.src_desc(), true);
    s->dst.init(d.dst, s->pd.dst_desc(), false);
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
  memory src = s.src.in(x), dst = s.dst.out(y);
  s.user_w.set_data_handle(ptr(w));
  if (s.reorder_w) s.w_reorder.execute(stream(), s.user_w, s.w);
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src},
                                       {DNNL_ARG_WEIGHTS, s.reorder_w ? s.w : s.user_w},
                                       {DNNL_ARG_DST, dst},
                                       {DNNL_ARG_SCRATCHPAD, s.scratch}};
  if (s.has_bias) args[DNNL_ARG_BIAS] = memory(s.pd.bias_desc(), engine(), ptr(bias));
  s.prim.execute(stream(), args);
  s.dst.finish_out();
  stream().wait();
}

void conv_onednn_backward_data(StateSlot& slot, const ConvGeometry& g, const Tensor& gy, const Tensor& w,
                               const Tensor& gx, bool blocked) {
  if (!slot) {
    auto s = std::make_shared<BackwardDataState>();
    const Dims d = dims_of(g, gy.dtype());
    dnnl::convolution_backward_data::desc bd(dnnl::algorithm::convolution_direct, act_md_for(d.src, d.act, blocked),
                                             any_wei_md(d), act_md_for(d.dst, d.act, blocked), d.strides,
                                             d.dilates, d.pad_l, d.pad_r);
    s->pd = dnnl::convolution_backward_data::primitive_desc(bd, scratch_attr(), engine(), forward_hint(d, blocked));
    s->prim = dnnl::convolution_backward_data(s->pd);
    s->diff_dst.init(d.dst, s->pd.diff_dst_desc(), true);
    s->diff_src.init(d.src, s->pd.diff_src_desc(), false);
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
  memory diff_dst = s.diff_dst.in(gy), diff_src = s.diff_src.out(gx);
  s.user_w.set_data_handle(ptr(w));
  if (s.reorder_w) s.w_reorder.execute(stream(), s.user_w, s.w);
  s.prim.execute(stream(), {{DNNL_ARG_DIFF_DST, diff_dst},
                            {DNNL_ARG_WEIGHTS, s.reorder_w ? s.w : s.user_w},
                            {DNNL_ARG_DIFF_SRC, diff_src},
                            {DNNL_ARG_SCRATCHPAD, s.scratch}});
  s.diff_src.finish_out();
  stream().wait();
}

void conv_onednn_backward_weights(StateSlot& slot, const ConvGeometry& g, const Tensor& x, const Tensor& gy,
                                  const Tensor& gw, const Tensor& gb, bool blocked) {
  if (!slot) {
    auto s = std::make_shared<BackwardWeightsState>();
    const Dims d = dims_of(g, x.dtype());
    // The bias gradient always comes along: it is almost free inside the reduction.
    dnnl::convolution_backward_weights::desc bd(dnnl::algorithm::convolution_direct,
                                                act_md_for(d.src, d.act, blocked), any_grad_wei_md(d),
                                                memory::desc(d.bias, dt::f32, tag::x),
                                                act_md_for(d.dst, d.act, blocked), d.strides, d.dilates, d.pad_l,
                                                d.pad_r);
    s->pd = dnnl::convolution_backward_weights::primitive_desc(bd, scratch_attr(), engine(), forward_hint(d, blocked));
    s->prim = dnnl::convolution_backward_weights(s->pd);
    s->src.init(d.src, s->pd.src_desc(), true);
    s->diff_dst.init(d.dst, s->pd.diff_dst_desc(), true);
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
  memory src = s.src.in(x), diff_dst = s.diff_dst.in(gy);
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


bool onednn_bf16_supported() {
  // oneDNN has bf16 convolutions only on CPUs with AVX-512 (emulated dot products on
  // avx512_core, native ones with AVX512_BF16 or AMX); elsewhere it finds no implementation.
  // A small 3D problem asks it once.
  static const bool yes = [] {
    try {
      const memory::dims src{1, 8, 4, 4, 4}, wei{8, 8, 3, 3, 3}, dst{1, 8, 4, 4, 4}, one{1, 1, 1};
      const memory::dims none{0, 0, 0};
      dnnl::convolution_forward::desc fd(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                                         memory::desc(src, dt::bf16, tag::ndhwc), memory::desc(wei, dt::bf16, tag::any),
                                         memory::desc(dst, dt::bf16, tag::ndhwc), one, none, one, one);
      dnnl::convolution_forward::primitive_desc pd(fd, engine());
      (void)pd;
      return true;
    } catch (const dnnl::error&) {
      return false;
    }
  }();
  return yes;
}

}  // namespace halo::kernels::cpu
