// BatchNorm: argument checks, the statistics algebra (in double) around the optional
// cross-rank reducer, and dispatch of the per-element kernels. f32 channels-last tensors
// use the OpenMP channels-last kernels; everything else the reference kernels on a
// contiguous copy (the result is returned in the input's memory format).
#include "halo/ops/batchnorm.hpp"

#include <cmath>

#include "cpu/batchnorm.hpp"
#include "dense.hpp"
#include "halo/config.hpp"
#if HALO_ENABLE_CUDA
#include "cuda/layer_ops.hpp"
#include "cuda/tensor_ops.hpp"
#include "halo/cuda/runtime.hpp"
#endif

namespace halo::ops {
namespace {

struct Checked {
  int64_t C;
  bool channels_last;  // use the channels-last fast kernels
};

void check_channel_vector(const Tensor& t, const Tensor& x, int64_t C, const std::string& who, const char* what) {
  if (!t.defined()) return;
  HALO_CHECK_SHAPE(t.shape() == Shape{C} && t.dtype() == x.dtype() && t.device() == x.device(), who, ": ", what, " ",
                   t.str(), " should be ", name(x.dtype()), "[", C, "] on ", x.device().str(), " for input ", x.str());
}

Checked check_input(const Tensor& x, const std::string& who) {
  HALO_CHECK_SHAPE(x.defined(), who, ": input is undefined");
  HALO_CHECK_SHAPE(x.dim() >= 2, who, ": input ", x.str(), " should be (N, C, spatial...)");
  HALO_CHECK_SHAPE(x.device().is_cpu(), who, ": input ", x.str(), " is not on the CPU; only CPU kernels are built");
  HALO_CHECK_SHAPE(x.dtype() == DType::f32 || x.dtype() == DType::f64, who, ": input ", x.str(), " must be f32 or f64");
  const bool cl = x.dtype() == DType::f32 && x.is_channels_last() && !x.is_contiguous();
  return {x.size(1), cl};
}

template <class T>
std::vector<double> read_channels(const Tensor& t, int64_t C, double fallback) {
  std::vector<double> v(size_t(C), fallback);
  if (t.defined()) {
    const Tensor tc = t.contiguous();
    const T* p = tc.data<T>();
    for (int64_t c = 0; c < C; ++c) v[size_t(c)] = double(p[c]);
  }
  return v;
}

// y = x * scale[c] + shift[c] in x's memory format.
Tensor apply_affine(const Tensor& x, const Checked& k, const std::vector<double>& scale, const std::vector<double>& shift,
                    bool relu, const std::string& who) {
  if (k.channels_last) {
    Tensor y = Tensor::empty_like(x);
    kernels::cpu::bn_affine_cl(x, scale.data(), shift.data(), y, relu);
    return y;
  }
  const Tensor xc = x.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  HALO_DISPATCH_FLOAT(x.dtype(), who, [&] {
    kernels::cpu::bn_affine_ref<T>(xc, scale.data(), shift.data(), y);
    if (relu)
      for (T *p = y.data<T>(), *end = p + y.numel(); p != end; ++p) *p = *p > T(0) ? *p : T(0);
  });
  return y.to_memory_format(x.memory_format());
}

// dy with zeros where the fused ReLU's output is not positive, contiguous (reference path).
Tensor relu_masked(const Tensor& dy, const Tensor& y, const std::string& who) {
  Tensor g = dy.contiguous().clone();
  const Tensor yc = y.contiguous();
  HALO_DISPATCH_FLOAT(dy.dtype(), who, [&] {
    const T* yp = yc.data<T>();
    T* gp = g.data<T>();
    for (int64_t i = 0; i < g.numel(); ++i)
      if (!(yp[i] > T(0))) gp[i] = T(0);
  });
  return g;
}

// Fills scale/shift from the statistics and the affine parameters.
/// Batch statistics from the per-channel sums `stats` = [sum (C), sum of squares (C),
/// count (1)], the layout the reducer contract promises: summed across the group by
/// `reducer` (when set), then mean and 1/sqrt(var + eps); `var` gets the biased variance.
/// Shared by the CPU and GPU paths, which differ only in how they compute the sums.
BatchNormSaved batch_stats(std::vector<double>& stats, int64_t C, const BatchNormConfig& cfg,
                           const StatsReducer& reducer, const Tensor& x, const std::string& who,
                           std::vector<double>& var) {
  if (reducer) reducer(stats.data(), stats.size());
  const double M = stats[size_t(2 * C)];
  HALO_CHECK_SHAPE(M > 1, who, ": training needs more than one value per channel, got ", M, " for input ", x.str(),
                   " (use a larger batch, or eval mode)");
  BatchNormSaved s;
  s.count = M;
  s.batch_stats = true;
  s.mean.resize(size_t(C));
  s.invstd.resize(size_t(C));
  var.assign(size_t(C), 0.0);
  for (size_t c = 0; c < size_t(C); ++c) {
    s.mean[c] = stats[c] / M;
    // E[x^2] - E[x]^2 can round below zero for near-constant channels.
    var[c] = std::max(0.0, stats[size_t(C) + c] / M - s.mean[c] * s.mean[c]);
    s.invstd[c] = 1.0 / std::sqrt(var[c] + cfg.eps);
  }
  return s;
}

/// running = (1 - momentum) running + momentum batch, with the unbiased variance; the C
/// values make a round trip through the host whatever the device (they are few).
void update_running(Tensor& running_mean, Tensor& running_var, const BatchNormSaved& s,
                    const std::vector<double>& var, const BatchNormConfig& cfg) {
  if (!running_mean.defined() || !running_var.defined()) return;
  std::vector<double> rm = running_mean.to_vector<double>(), rv = running_var.to_vector<double>();
  const double m = cfg.momentum, unbias = s.count / (s.count - 1);
  for (size_t c = 0; c < rm.size(); ++c) {
    rm[c] = (1 - m) * rm[c] + m * s.mean[c];
    rv[c] = (1 - m) * rv[c] + m * var[c] * unbias;
  }
  const int64_t C = int64_t(rm.size());
  running_mean.copy_(Tensor::from_vector(rm, {C}));
  running_var.copy_(Tensor::from_vector(rv, {C}));
}

void affine_from_stats(const Tensor& weight, const Tensor& bias, const BatchNormSaved& s, int64_t C,
                       std::vector<double>& scale, std::vector<double>& shift, const std::string& who) {
  std::vector<double> w, b;
  HALO_DISPATCH_FLOAT(weight.defined() ? weight.dtype() : DType::f64, who, [&] {
    w = read_channels<T>(weight, C, 1.0);
    b = read_channels<T>(bias, C, 0.0);
  });
  scale.resize(size_t(C));
  shift.resize(size_t(C));
  for (size_t c = 0; c < size_t(C); ++c) {
    scale[c] = w[c] * s.invstd[c];
    shift[c] = b[c] - s.mean[c] * scale[c];
  }
}

#if HALO_ENABLE_CUDA
// ---- CUDA: the per-element passes and per-channel sums run on the device; the O(C)
// statistics algebra stays on the host in f64, exactly as on the CPU. The per-channel sums
// are copied to the host (2C + 1 doubles) because the StatsReducer contract is a host
// buffer (MPI allreduce); the derived per-channel coefficients go back as C floats.

bool on_gpu(const Tensor& x) { return x.defined() && x.device().is_cuda(); }

// weight, bias and running statistics: (C) on x's GPU, f32 (master copies) or x's dtype.
void check_gpu_channel_vector(const Tensor& t, const Tensor& x, int64_t C, const std::string& who, const char* what) {
  if (!t.defined()) return;
  HALO_CHECK_SHAPE(t.shape() == Shape{C} && (t.dtype() == x.dtype() || t.dtype() == DType::f32) &&
                       t.device() == x.device(),
                   who, ": ", what, " ", t.str(), " should be f32 or ", name(x.dtype()), "[", C, "] on ",
                   x.device().str(), " for input ", x.str());
}

struct GpuInput {
  Tensor x;  // dense: contiguous or channels-last
  cuda::raw::ChannelLayout layout;
  bool bf16;
};

GpuInput gpu_input(const Tensor& x_in, const std::string& who) {
  HALO_CHECK_SHAPE(x_in.dim() >= 2, who, ": input ", x_in.str(), " should be (N, C, spatial...)");
  GpuInput g;
  g.bf16 = cuda::is_bf16(x_in, who.c_str());
  const bool cl = x_in.is_channels_last() && x_in.is_dense();
  g.x = cl || x_in.is_contiguous() ? x_in : x_in.contiguous();
  const int64_t C = g.x.size(1);
  g.layout.n = g.x.numel();
  g.layout.C = C;
  g.layout.inner = cl || g.x.dim() == 2 || C == 0 || g.x.size(0) == 0 ? 1 : g.x.numel() / (g.x.size(0) * C);
  return g;
}

std::vector<double> gpu_channels(const Tensor& t, int64_t C, double fallback) {
  return t.defined() ? t.to_vector<double>() : std::vector<double>(size_t(C), fallback);
}

template <class V>
Tensor upload(const std::vector<V>& host, const Tensor& like) {
  std::vector<V> v(host.begin(), host.end());
  return Tensor::from_vector(v, {int64_t(v.size())}).to(like.device());
}

std::vector<float> to_f32(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

Tensor gpu_apply_affine(const GpuInput& in, const Tensor& weight, const Tensor& bias, const BatchNormSaved& s,
                        bool relu) {
  const int64_t C = in.layout.C;
  const auto w = gpu_channels(weight, C, 1.0), b = gpu_channels(bias, C, 0.0);
  std::vector<double> scale(static_cast<size_t>(C)), shift(static_cast<size_t>(C));
  for (size_t c = 0; c < size_t(C); ++c) {
    scale[c] = w[c] * s.invstd[c];
    shift[c] = b[c] - s.mean[c] * scale[c];
  }
  const Tensor dscale = upload(to_f32(scale), in.x), dshift = upload(to_f32(shift), in.x);
  Tensor y = Tensor::empty_like(in.x);
  cuda::DeviceGuard guard(in.x.device().index);
  cuda::raw::bn_affine(in.x.raw_data(), y.raw_data(), in.bf16, in.layout, dscale.data<float>(),
                       dshift.data<float>(), relu, cuda::stream_of(in.x));
  return y;
}

Tensor gpu_forward_train(const Tensor& x_in, const Tensor& weight, const Tensor& bias, Tensor& running_mean,
                         Tensor& running_var, const BatchNormConfig& cfg, BatchNormSaved* saved,
                         const StatsReducer& reducer, const std::string& who) {
  const GpuInput in = gpu_input(x_in, who);
  const int64_t C = in.layout.C;
  check_gpu_channel_vector(weight, in.x, C, who, "weight");
  check_gpu_channel_vector(bias, in.x, C, who, "bias");
  check_gpu_channel_vector(running_mean, in.x, C, who, "running_mean");
  check_gpu_channel_vector(running_var, in.x, C, who, "running_var");
  Tensor acc = Tensor::zeros({2 * C}, DType::f64, in.x.device());
  {
    cuda::DeviceGuard guard(in.x.device().index);
    cuda::raw::bn_stats(in.x.raw_data(), in.bf16, in.layout, acc.data<double>(), cuda::stream_of(in.x));
  }
  std::vector<double> stats = acc.to_vector<double>();
  stats.push_back(double(C ? in.x.numel() / C : 0));
  std::vector<double> var;
  BatchNormSaved s = batch_stats(stats, C, cfg, reducer, x_in, who, var);
  update_running(running_mean, running_var, s, var, cfg);
  Tensor y = gpu_apply_affine(in, weight, bias, s, cfg.relu);
  if (saved) *saved = std::move(s);
  return y;
}

Tensor gpu_forward_eval(const Tensor& x_in, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                        const Tensor& running_var, const BatchNormConfig& cfg, BatchNormSaved* saved,
                        const std::string& who) {
  const GpuInput in = gpu_input(x_in, who);
  const int64_t C = in.layout.C;
  check_gpu_channel_vector(weight, in.x, C, who, "weight");
  check_gpu_channel_vector(bias, in.x, C, who, "bias");
  HALO_CHECK_SHAPE(running_mean.defined() && running_var.defined(), who,
                   ": eval mode needs running statistics (none are kept)");
  check_gpu_channel_vector(running_mean, in.x, C, who, "running_mean");
  check_gpu_channel_vector(running_var, in.x, C, who, "running_var");
  BatchNormSaved s;
  s.batch_stats = false;
  s.count = double(C ? in.x.numel() / C : 0);
  s.mean = running_mean.to_vector<double>();
  s.invstd = running_var.to_vector<double>();
  for (double& v : s.invstd) v = 1.0 / std::sqrt(v + cfg.eps);
  Tensor y = gpu_apply_affine(in, weight, bias, s, cfg.relu);
  if (saved) *saved = std::move(s);
  return y;
}

BatchNormGrads gpu_backward(const Tensor& dy_in, const Tensor& x_in, const Tensor& weight, const BatchNormSaved& saved,
                            bool need_dx, const StatsReducer& reducer, const std::string& who,
                            const Tensor& relu_output) {
  const GpuInput in = gpu_input(x_in, who);
  const int64_t C = in.layout.C;
  HALO_CHECK_SHAPE(dy_in.defined() && dy_in.shape() == x_in.shape() && dy_in.dtype() == x_in.dtype() &&
                       dy_in.device() == x_in.device(),
                   who, ": output gradient ", dy_in.defined() ? dy_in.str() : std::string("(undefined)"),
                   " does not match input ", x_in.str());
  check_gpu_channel_vector(weight, in.x, C, who, "weight");
  HALO_CHECK_SHAPE(saved.mean.size() == size_t(C) && saved.invstd.size() == size_t(C), who,
                   ": backward without a matching forward (saved statistics for ", saved.mean.size(),
                   " channels, input ", x_in.str(), ")");
  const bool relu = relu_output.defined();
  HALO_CHECK_SHAPE(!relu || (relu_output.shape() == x_in.shape() && relu_output.dtype() == x_in.dtype() &&
                             relu_output.device() == x_in.device()),
                   who, ": fused ReLU output ", relu_output.defined() ? relu_output.str() : std::string(),
                   " does not match input ", x_in.str());
  // The kernels see every operand in x's layout.
  const Tensor dy = detail::in_layout_of(dy_in, in.x);
  const Tensor ry = relu ? detail::in_layout_of(relu_output, in.x) : Tensor();
  const void* mask = relu ? ry.raw_data() : nullptr;
  void* stream = cuda::stream_of(in.x);
  cuda::DeviceGuard guard(in.x.device().index);

  const Tensor dmean = upload(saved.mean, in.x);
  Tensor acc = Tensor::zeros({2 * C}, DType::f64, in.x.device());
  cuda::raw::bn_grad_sums(dy.raw_data(), in.x.raw_data(), mask, in.bf16, in.layout, dmean.data<double>(),
                          acc.data<double>(), stream);
  std::vector<double> sums = acc.to_vector<double>();  // [sum(dy) (C), sum(dy * (x - mean)) (C)]
  for (size_t c = 0; c < size_t(C); ++c) sums[size_t(C) + c] *= saved.invstd[c];  // -> sum(dy * xhat)

  // dweight/dbias in the dtype of the weight they belong to (f32 master weights under bf16).
  const DType pdt = weight.defined() ? weight.dtype() : x_in.dtype();
  BatchNormGrads out;
  out.dbias = Tensor::from_vector(std::vector<double>(sums.begin(), sums.begin() + C), {C}).to(pdt).to(x_in.device());
  out.dweight = Tensor::from_vector(std::vector<double>(sums.begin() + C, sums.end()), {C}).to(pdt).to(x_in.device());
  if (!need_dx) return out;

  const auto w = gpu_channels(weight, C, 1.0);
  if (saved.batch_stats && reducer) reducer(sums.data(), sums.size());
  std::vector<double> kk(static_cast<size_t>(C)), p(size_t(C), 0.0), q(size_t(C), 0.0);
  for (size_t c = 0; c < size_t(C); ++c) {
    kk[c] = w[c] * saved.invstd[c];
    if (saved.batch_stats) {
      const double mdy = sums[c] / saved.count, mdyx = sums[size_t(C) + c] / saved.count;
      p[c] = -kk[c] * saved.invstd[c] * mdyx;
      q[c] = -kk[c] * mdy - p[c] * saved.mean[c];
    }
  }
  const Tensor dk = upload(to_f32(kk), in.x), dp = upload(to_f32(p), in.x), dq = upload(to_f32(q), in.x);
  out.dx = Tensor::empty_like(in.x);
  cuda::raw::bn_grad_input(dy.raw_data(), in.x.raw_data(), mask, out.dx.raw_data(), in.bf16, in.layout,
                           dk.data<float>(), dp.data<float>(), dq.data<float>(), stream);
  return out;
}
#endif

}  // namespace

Tensor batchnorm_forward_train(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& running_mean,
                               Tensor& running_var, const BatchNormConfig& cfg, BatchNormSaved* saved,
                               const StatsReducer& reducer, const std::string& who) {
#if HALO_ENABLE_CUDA
  if (on_gpu(x)) return gpu_forward_train(x, weight, bias, running_mean, running_var, cfg, saved, reducer, who);
#endif
  const Checked k = check_input(x, who);
  const int64_t C = k.C;
  check_channel_vector(weight, x, C, who, "weight");
  check_channel_vector(bias, x, C, who, "bias");
  check_channel_vector(running_mean, x, C, who, "running_mean");
  check_channel_vector(running_var, x, C, who, "running_var");

  // [sum (C), sum of squares (C), count (1)]: the layout the reducer contract promises.
  std::vector<double> stats(size_t(2 * C + 1), 0.0);
  if (k.channels_last) {
    kernels::cpu::bn_channel_sums_cl(x, stats.data(), stats.data() + C);
  } else {
    const Tensor xc = x.contiguous();
    HALO_DISPATCH_FLOAT(x.dtype(), who, [&] { kernels::cpu::bn_channel_sums_ref<T>(xc, stats.data(), stats.data() + C); });
  }
  stats[size_t(2 * C)] = double(C ? x.numel() / C : 0);
  std::vector<double> var;
  BatchNormSaved s = batch_stats(stats, C, cfg, reducer, x, who, var);
  update_running(running_mean, running_var, s, var, cfg);

  std::vector<double> scale, shift;
  affine_from_stats(weight, bias, s, C, scale, shift, who);
  Tensor y = apply_affine(x, k, scale, shift, cfg.relu, who);
  if (saved) *saved = std::move(s);
  return y;
}

Tensor batchnorm_forward_eval(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                              const Tensor& running_var, const BatchNormConfig& cfg, BatchNormSaved* saved,
                              const std::string& who) {
#if HALO_ENABLE_CUDA
  if (on_gpu(x)) return gpu_forward_eval(x, weight, bias, running_mean, running_var, cfg, saved, who);
#endif
  const Checked k = check_input(x, who);
  const int64_t C = k.C;
  check_channel_vector(weight, x, C, who, "weight");
  check_channel_vector(bias, x, C, who, "bias");
  HALO_CHECK_SHAPE(running_mean.defined() && running_var.defined(), who,
                   ": eval mode needs running statistics (none are kept)");
  check_channel_vector(running_mean, x, C, who, "running_mean");
  check_channel_vector(running_var, x, C, who, "running_var");
  BatchNormSaved s;
  s.batch_stats = false;
  s.count = double(C ? x.numel() / C : 0);
  HALO_DISPATCH_FLOAT(x.dtype(), who, [&] {
    s.mean = read_channels<T>(running_mean, C, 0.0);
    s.invstd = read_channels<T>(running_var, C, 1.0);
  });
  for (double& v : s.invstd) v = 1.0 / std::sqrt(v + cfg.eps);
  std::vector<double> scale, shift;
  affine_from_stats(weight, bias, s, C, scale, shift, who);
  Tensor y = apply_affine(x, k, scale, shift, cfg.relu, who);
  if (saved) *saved = std::move(s);
  return y;
}

BatchNormGrads batchnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& weight, const BatchNormSaved& saved,
                                  bool need_dx, const StatsReducer& reducer, const std::string& who,
                                  const Tensor& relu_output) {
#if HALO_ENABLE_CUDA
  if (on_gpu(x)) return gpu_backward(dy, x, weight, saved, need_dx, reducer, who, relu_output);
#endif
  const Checked k = check_input(x, who);
  const int64_t C = k.C;
  HALO_CHECK_SHAPE(dy.defined() && dy.shape() == x.shape() && dy.dtype() == x.dtype(), who, ": output gradient ",
                   dy.defined() ? dy.str() : std::string("(undefined)"), " does not match input ", x.str());
  check_channel_vector(weight, x, C, who, "weight");
  HALO_CHECK_SHAPE(saved.mean.size() == size_t(C) && saved.invstd.size() == size_t(C), who,
                   ": backward without a matching forward (saved statistics for ", saved.mean.size(),
                   " channels, input ", x.str(), ")");

  const bool relu = relu_output.defined();
  HALO_CHECK_SHAPE(!relu || (relu_output.shape() == x.shape() && relu_output.dtype() == x.dtype()), who,
                   ": fused ReLU output ", relu_output.defined() ? relu_output.str() : std::string(),
                   " does not match input ", x.str());

  // Kernels get all tensors in one layout: dy and the ReLU output follow x's.
  const bool cl = k.channels_last && dy.is_channels_last() && (!relu || relu_output.strides() == x.strides());
  const Tensor xc = cl ? x : x.contiguous();
  const Tensor gc = cl ? dy : relu ? relu_masked(dy, relu_output, who) : dy.contiguous();
  const float* mask = cl && relu ? relu_output.data<float>() : nullptr;
  std::vector<double> sums(size_t(2 * C), 0.0);  // [sum(dy) (C), sum(dy * (x - mean)) (C)]
  if (cl) {
    kernels::cpu::bn_grad_sums_cl(gc, xc, saved.mean.data(), sums.data(), sums.data() + C, mask);
  } else {
    HALO_DISPATCH_FLOAT(x.dtype(), who, [&] {
      kernels::cpu::bn_grad_sums_ref<T>(gc, xc, saved.mean.data(), sums.data(), sums.data() + C);
    });
  }
  for (size_t c = 0; c < size_t(C); ++c) sums[size_t(C) + c] *= saved.invstd[c];  // -> sum(dy * xhat)

  BatchNormGrads out;
  HALO_DISPATCH_FLOAT(x.dtype(), who, [&] {
    out.dbias = Tensor::empty({C}, x.dtype());
    out.dweight = Tensor::empty({C}, x.dtype());
    for (int64_t c = 0; c < C; ++c) {
      out.dbias.data<T>()[c] = T(sums[size_t(c)]);
      out.dweight.data<T>()[c] = T(sums[size_t(C + c)]);
    }
  });
  if (!need_dx) return out;

  // dx = w * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)) with group-wide means,
  // rewritten per channel as k * dy + p * x + q.
  std::vector<double> w;
  HALO_DISPATCH_FLOAT(x.dtype(), who, [&] { w = read_channels<T>(weight, C, 1.0); });
  if (saved.batch_stats && reducer) reducer(sums.data(), sums.size());
  std::vector<double> kk(static_cast<size_t>(C)), p(size_t(C), 0.0), q(size_t(C), 0.0);
  for (size_t c = 0; c < size_t(C); ++c) {
    kk[c] = w[c] * saved.invstd[c];
    if (saved.batch_stats) {
      const double mdy = sums[c] / saved.count, mdyx = sums[size_t(C) + c] / saved.count;
      p[c] = -kk[c] * saved.invstd[c] * mdyx;
      q[c] = -kk[c] * mdy - p[c] * saved.mean[c];
    }
  }
  if (cl) {
    out.dx = Tensor::empty_like(x);
    kernels::cpu::bn_grad_input_cl(gc, xc, kk.data(), p.data(), q.data(), out.dx, mask);
  } else {
    Tensor dx = Tensor::empty(x.shape(), x.dtype());
    HALO_DISPATCH_FLOAT(x.dtype(), who, [&] {
      kernels::cpu::bn_grad_input_ref<T>(gc, xc, kk.data(), p.data(), q.data(), dx);
    });
    out.dx = dx.to_memory_format(x.memory_format());
  }
  return out;
}

}  // namespace halo::ops
