// Dispatch of the update rules: argument checks, then the kernel for the device and dtype.
// A CUDA backend adds its branch here; nothing above changes.
#include "halo/optim/update_rules.hpp"

#include <cmath>

#include "cpu/optim.hpp"
#include "halo/config.hpp"
#if HALO_ENABLE_CUDA
#include "cuda/elementwise.hpp"
#include "cuda/ops.hpp"
#include "cuda/optim_ops.hpp"
#include "cuda/tensor_ops.hpp"
#include "halo/cuda/runtime.hpp"
#endif

namespace halo::optim {

namespace {

void check_pair(const Tensor& w, const Tensor& t, const char* rule, const char* what) {
  HALO_CHECK_SHAPE(t.defined(), rule, ": ", what, " is undefined (parameter ", w.str(), ")");
  HALO_CHECK_SHAPE(t.shape() == w.shape() && t.dtype() == w.dtype() && t.device() == w.device() &&
                       t.strides() == w.strides(),
                   rule, ": ", what, " ", t.str(), " does not match the parameter ", w.str(),
                   " in shape, dtype, device and layout");
}

void check_param(const Tensor& w, const char* rule) {
  HALO_CHECK_SHAPE(w.defined() && w.is_dense(), rule, ": the parameter must be a dense tensor, got ",
                   (w.defined() ? w.str() : "undefined"));
}

[[noreturn]] void no_kernel(const Tensor& w, const char* rule) {
  throw Error(str(rule, ": no kernel for ", w.device().str(), " in this build; keep parameters on the cpu"));
}

#if HALO_ENABLE_CUDA
/// Optimizer state and master weights stay f32 on the GPU (mixed precision casts copies).
float* gpu_f32(const Tensor& t, const char* rule) {
  HALO_CHECK_SHAPE(t.dtype() == DType::f32, rule, ": ", t.str(), " must be f32 on the GPU (master weights and ",
                   "optimizer state are kept in f32)");
  return static_cast<float*>(t.raw_data());
}
#endif

}  // namespace

void sgd_update(Tensor& w, const Tensor& g, Tensor* momentum_buf, const SgdStep& s) {
  check_param(w, "sgd_update");
  check_pair(w, g, "sgd_update", "gradient");
  if (momentum_buf) check_pair(w, *momentum_buf, "sgd_update", "momentum buffer");
#if HALO_ENABLE_CUDA
  if (w.device().is_cuda()) {
    cuda::DeviceGuard guard(w.device().index);
    cuda::raw::sgd_update(gpu_f32(w, "sgd_update"), gpu_f32(g, "sgd_update"),
                          momentum_buf ? gpu_f32(*momentum_buf, "sgd_update") : nullptr, w.numel(), float(s.lr),
                          float(s.momentum), float(s.weight_decay), s.nesterov, cuda::stream_of(w));
    return;
  }
#endif
  if (!w.device().is_cpu()) no_kernel(w, "sgd_update");
  HALO_DISPATCH_FLOAT(w.dtype(), "sgd_update", [&] {
    kernels::cpu::sgd_update<T>(w.data<T>(), g.data<T>(), momentum_buf ? momentum_buf->data<T>() : nullptr,
                                w.numel(), s);
  });
}

void adam_update(Tensor& w, const Tensor& g, Tensor& m, Tensor& v, const AdamStep& s) {
  check_param(w, "adam_update");
  check_pair(w, g, "adam_update", "gradient");
  check_pair(w, m, "adam_update", "exp_avg");
  check_pair(w, v, "adam_update", "exp_avg_sq");
#if HALO_ENABLE_CUDA
  if (w.device().is_cuda()) {
    cuda::DeviceGuard guard(w.device().index);
    cuda::raw::adam_update(gpu_f32(w, "adam_update"), gpu_f32(g, "adam_update"), gpu_f32(m, "adam_update"),
                           gpu_f32(v, "adam_update"), w.numel(), float(s.lr), float(s.beta1), float(s.beta2),
                           float(s.eps), float(s.weight_decay), s.decoupled, float(s.bias1), float(s.bias2),
                           cuda::stream_of(w));
    return;
  }
#endif
  if (!w.device().is_cpu()) no_kernel(w, "adam_update");
  HALO_DISPATCH_FLOAT(w.dtype(), "adam_update", [&] {
    kernels::cpu::adam_update<T>(w.data<T>(), g.data<T>(), m.data<T>(), v.data<T>(), w.numel(), s);
  });
}

double lamb_update(Tensor& w, const Tensor& g, Tensor& m, Tensor& v, const LambStep& s) {
  check_param(w, "lamb_update");
  check_pair(w, g, "lamb_update", "gradient");
  check_pair(w, m, "lamb_update", "exp_avg");
  check_pair(w, v, "lamb_update", "exp_avg_sq");
#if HALO_ENABLE_CUDA
  if (w.device().is_cuda()) {
    // Two passes around a host sync: the trust ratio needs both norms, and the rule returns it.
    const char* r = "lamb_update";
    cuda::DeviceGuard guard(w.device().index);
    Tensor sums = Tensor::zeros({2}, DType::f64, w.device());
    const float ib1 = float(1.0 / s.bias1), ib2 = float(1.0 / s.bias2);
    cuda::raw::lamb_moments(gpu_f32(w, r), gpu_f32(g, r), gpu_f32(m, r), gpu_f32(v, r), w.numel(), float(s.beta1),
                            float(s.beta2), float(s.eps), float(s.weight_decay), ib1, ib2, sums.data<double>(),
                            cuda::stream_of(w));
    const auto n2 = sums.to_vector<double>();
    const double wn = std::sqrt(n2[0]), un = std::sqrt(n2[1]);
    double trust = (wn > 0 && un > 0) ? wn / un : 1.0;
    if (s.max_trust > 0 && trust > s.max_trust) trust = s.max_trust;
    cuda::raw::lamb_apply(gpu_f32(w, r), gpu_f32(m, r), gpu_f32(v, r), w.numel(), float(s.eps), float(s.weight_decay),
                          ib1, ib2, float(s.lr * trust), cuda::stream_of(w));
    return trust;
  }
#endif
  if (!w.device().is_cpu()) no_kernel(w, "lamb_update");
  return HALO_DISPATCH_FLOAT(w.dtype(), "lamb_update", [&] {
    return kernels::cpu::lamb_update<T>(w.data<T>(), g.data<T>(), m.data<T>(), v.data<T>(), w.numel(), s);
  });
}

double lars_update(Tensor& w, const Tensor& g, Tensor& v, const LarsStep& s) {
  check_param(w, "lars_update");
  check_pair(w, g, "lars_update", "gradient");
  check_pair(w, v, "lars_update", "momentum buffer");
#if HALO_ENABLE_CUDA
  if (w.device().is_cuda()) {
    const char* r = "lars_update";
    double local = 1.0;
    if (s.adapt) {
      const double wn = std::sqrt(cuda::reduce_dot(w, &w)), gn = std::sqrt(cuda::reduce_dot(g, &g));
      if (wn > 0 && gn > 0) local = s.trust_coefficient * wn / (gn + s.weight_decay * wn + s.eps);
    }
    cuda::DeviceGuard guard(w.device().index);
    cuda::raw::lars_apply(gpu_f32(w, r), gpu_f32(g, r), gpu_f32(v, r), w.numel(), float(s.momentum),
                          s.adapt ? float(s.weight_decay) : 0.f, float(s.lr * local), cuda::stream_of(w));
    return local;
  }
#endif
  if (!w.device().is_cpu()) no_kernel(w, "lars_update");
  return HALO_DISPATCH_FLOAT(w.dtype(), "lars_update", [&] {
    return kernels::cpu::lars_update<T>(w.data<T>(), g.data<T>(), v.data<T>(), w.numel(), s);
  });
}

double sum_squares(const Tensor& t) {
  check_param(t, "sum_squares");
#if HALO_ENABLE_CUDA
  if (t.device().is_cuda()) return cuda::reduce_dot(t, &t);
#endif
  if (!t.device().is_cpu()) no_kernel(t, "sum_squares");
  return HALO_DISPATCH_FLOAT(t.dtype(), "sum_squares",
                             [&] { return kernels::cpu::sum_squares<T>(t.data<T>(), t.numel()); });
}

void scale_inplace(Tensor& t, double factor) {
  check_param(t, "scale_inplace");
#if HALO_ENABLE_CUDA
  if (t.device().is_cuda()) {
    cuda::scale(t, float(factor));
    return;
  }
#endif
  if (!t.device().is_cpu()) no_kernel(t, "scale_inplace");
  HALO_DISPATCH_FLOAT(t.dtype(), "scale_inplace", [&] { kernels::cpu::scale<T>(t.data<T>(), t.numel(), factor); });
}

}  // namespace halo::optim
