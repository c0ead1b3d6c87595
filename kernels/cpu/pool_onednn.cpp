// Pooling on oneDNN. Memory descriptors are built from the tensors' own strides, so
// channels-last (NDHWC) activations from the convolutions are pooled in place of format
// and the output keeps the input's layout. Primitives are created once per input
// shape/layout and kept in the caller's plan.
#include <dnnl.hpp>

#include "cpu/pool.hpp"

namespace halo::kernels::cpu {

struct OnednnPoolState {
  // What the primitives were built for; any change rebuilds them.
  Shape shape;
  Strides strides;
  std::string config;
  DType dtype = DType::f32;

  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  dnnl::memory::desc src_md, dst_md;
  dnnl::pooling_forward::primitive_desc fwd_pd;
  dnnl::pooling_forward fwd;
  dnnl::pooling_backward::primitive_desc bwd_pd;
  dnnl::pooling_backward bwd;
  bool has_bwd = false;

  // Max pooling: where each window's maximum was, written by the last forward of `ws_input`.
  dnnl::memory workspace;
  const void* ws_input = nullptr;
};

namespace {

dnnl::memory::dims to_dims(const std::vector<int64_t>& v) { return dnnl::memory::dims(v.begin(), v.end()); }

dnnl::algorithm algorithm_of(const ops::PoolConfig& cfg) {
  if (cfg.kind == ops::PoolKind::max) return dnnl::algorithm::pooling_max;
  return cfg.count_include_pad ? dnnl::algorithm::pooling_avg_include_padding
                               : dnnl::algorithm::pooling_avg_exclude_padding;
}

// Returns the state for x, building primitives when the shape, layout or configuration changed.
OnednnPoolState& state_for(const Tensor& x, const ops::PoolConfig& cfg, std::shared_ptr<OnednnPoolState>& state) {
  const std::string key = cfg.str();
  if (state && state->shape == x.shape() && state->strides == x.strides() && state->config == key &&
      state->dtype == x.dtype())
    return *state;
  auto s = std::make_shared<OnednnPoolState>();
  s->shape = x.shape();
  s->strides = x.strides();
  s->config = key;
  s->dtype = x.dtype();
  const Shape ys = ops::pool_output_shape(x.shape(), cfg);
  const MemoryFormat fmt = x.memory_format();
  const Strides ystrides = fmt == MemoryFormat::channels_last ? channels_last_strides(ys) : contiguous_strides(ys);
  using dt = dnnl::memory::data_type;
  const dt type = x.dtype() == DType::bf16 ? dt::bf16 : dt::f32;
  s->src_md = dnnl::memory::desc(to_dims(x.shape()), type, to_dims(x.strides()));
  s->dst_md = dnnl::memory::desc(to_dims(ys), type, to_dims(ystrides));
  const auto strides = to_dims(cfg.stride), kernel = to_dims(cfg.kernel), pad = to_dims(cfg.padding);
  dnnl::pooling_forward::desc fd(dnnl::prop_kind::forward_training, algorithm_of(cfg), s->src_md, s->dst_md, strides,
                                 kernel, pad, pad);
  s->fwd_pd = dnnl::pooling_forward::primitive_desc(fd, s->engine);
  s->fwd = dnnl::pooling_forward(s->fwd_pd);
  dnnl::pooling_backward::desc bd(algorithm_of(cfg), s->src_md, s->dst_md, strides, kernel, pad, pad);
  s->bwd_pd = dnnl::pooling_backward::primitive_desc(bd, s->engine, s->fwd_pd);
  s->bwd = dnnl::pooling_backward(s->bwd_pd);
  if (cfg.kind == ops::PoolKind::max) s->workspace = dnnl::memory(s->fwd_pd.workspace_desc(), s->engine);
  state = std::move(s);
  return *state;
}

Tensor run_forward(const Tensor& x, const ops::PoolConfig& cfg, OnednnPoolState& s) {
  Tensor y = Tensor::empty(ops::pool_output_shape(x.shape(), cfg), x.dtype(), Device::cpu(), x.memory_format());
  dnnl::memory src(s.src_md, s.engine, x.raw_data());
  dnnl::memory dst(s.dst_md, s.engine, y.raw_data());
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}};
  if (cfg.kind == ops::PoolKind::max) args.emplace(DNNL_ARG_WORKSPACE, s.workspace);
  s.fwd.execute(s.stream, args);
  s.stream.wait();
  s.ws_input = x.raw_data();
  return y;
}

}  // namespace

// Channels-last only: for plain NCDHW, oneDNN 2.6 falls back to a generic kernel that was
// measured 2-4x slower than the reference loops (halo-bench-poolnorm).
bool pool_onednn_supports(const Tensor& x, const ops::PoolConfig& cfg) {
  const bool kind_known = cfg.kind == ops::PoolKind::max || cfg.kind == ops::PoolKind::avg;
  const bool type_known = x.dtype() == DType::f32 || x.dtype() == DType::bf16;
  return kind_known && type_known && x.device().is_cpu() && x.is_channels_last() && !x.is_contiguous();
}

Tensor pool_forward_onednn(const Tensor& x, const ops::PoolConfig& cfg, std::shared_ptr<OnednnPoolState>& state) {
  try {
    return run_forward(x, cfg, state_for(x, cfg, state));
  } catch (const dnnl::error& e) {
    throw Error(str("oneDNN pooling forward (", cfg.str(), ") on ", x.str(), " failed: ", e.what()));
  }
}

Tensor pool_backward_onednn(const Tensor& dy, const Tensor& x, const ops::PoolConfig& cfg,
                            std::shared_ptr<OnednnPoolState>& state) {
  try {
    OnednnPoolState& s = state_for(x, cfg, state);
    // Without a workspace from this x's forward (no plan, or a plan last used on another
    // input), recompute it: correctness never depends on the caller keeping the plan.
    if (cfg.kind == ops::PoolKind::max && s.ws_input != x.raw_data()) run_forward(x, cfg, s);
    const Tensor g = dy.to_memory_format(x.memory_format());
    Tensor dx = Tensor::empty(x.shape(), x.dtype(), Device::cpu(), x.memory_format());
    dnnl::memory diff_dst(s.dst_md, s.engine, g.raw_data());
    dnnl::memory diff_src(s.src_md, s.engine, dx.raw_data());
    std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_DIFF_SRC, diff_src}};
    if (cfg.kind == ops::PoolKind::max) args.emplace(DNNL_ARG_WORKSPACE, s.workspace);
    s.bwd.execute(s.stream, args);
    s.stream.wait();
    return dx;
  } catch (const dnnl::error& e) {
    throw Error(str("oneDNN pooling backward (", cfg.str(), ") on ", x.str(), " failed: ", e.what()));
  }
}

}  // namespace halo::kernels::cpu
