// The cpu BatchNorm table: f32 channels-last tensors use the OpenMP channels-last kernels;
// everything else the reference kernels on a contiguous copy (the result is returned in the
// input's memory format). The statistics algebra is batchnorm_stats.hpp.
#include <cmath>

#include "cpu/batchnorm.hpp"
#include "dense.hpp"
#include "batchnorm_stats.hpp"
#include "cpu/register.hpp"

namespace halo::ops::cpu_kernels {
namespace {

using detail::batch_stats;
using detail::update_running;

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
  HALO_CHECK_SHAPE(x.device().is_cpu(), who, ": input ", x.str(), " is not on the CPU");
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


}  // namespace

Tensor batchnorm_forward_train(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& running_mean,
                               Tensor& running_var, const BatchNormConfig& cfg, BatchNormSaved* saved,
                               const StatsReducer& reducer, const std::string& who) {
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

}  // namespace halo::ops::cpu_kernels

namespace halo::kernels::cpu {

void register_batchnorm(ops::OpTable& t) {
  static const ops::BatchNormKernels k = {ops::cpu_kernels::batchnorm_forward_train,
                                          ops::cpu_kernels::batchnorm_forward_eval,
                                          ops::cpu_kernels::batchnorm_backward};
  t.batchnorm = &k;
}

}  // namespace halo::kernels::cpu
