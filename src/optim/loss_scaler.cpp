#include "halo/optim/loss_scaler.hpp"

#include <cmath>
#include <vector>

#include "halo/optim/update_rules.hpp"
#include "halo/util/error.hpp"

namespace halo::optim {
namespace {

// Host loops over the storage types gradients come in. bf16 and f16 are widened to float
// one element at a time: a half-precision inf or NaN stays one in float.
template <class F>
void for_each_cpu(const Tensor& t, const char* who, F&& f) {
  HALO_CHECK(t.is_dense(), who, ": gradient of shape ", t.shape(), " is not dense");
  const int64_t n = t.numel();
  switch (t.dtype()) {
    case DType::f32: { const float* p = t.data<float>(); for (int64_t i = 0; i < n; ++i) f(double(p[i])); break; }
    case DType::f64: { const double* p = t.data<double>(); for (int64_t i = 0; i < n; ++i) f(p[i]); break; }
    case DType::bf16: { const bf16* p = t.data<bf16>(); for (int64_t i = 0; i < n; ++i) f(double(float(p[i]))); break; }
    case DType::f16: { const f16* p = t.data<f16>(); for (int64_t i = 0; i < n; ++i) f(double(float(p[i]))); break; }
    default: throw Error(str(who, ": gradients of dtype ", name(t.dtype()), " cannot be loss-scaled"));
  }
}

bool finite_cpu(const Tensor& t) {
  bool ok = true;
  for_each_cpu(t, "grads_finite", [&](double v) { ok = ok && std::isfinite(v); });
  return ok;
}

void scale_cpu(Tensor& t, double factor) {
  const int64_t n = t.numel();
  switch (t.dtype()) {
    case DType::f32: { float* p = t.data<float>(); for (int64_t i = 0; i < n; ++i) p[i] = float(double(p[i]) * factor); break; }
    case DType::f64: { double* p = t.data<double>(); for (int64_t i = 0; i < n; ++i) p[i] *= factor; break; }
    case DType::bf16: { bf16* p = t.data<bf16>(); for (int64_t i = 0; i < n; ++i) p[i] = bf16(float(double(float(p[i])) * factor)); break; }
    case DType::f16: { f16* p = t.data<f16>(); for (int64_t i = 0; i < n; ++i) p[i] = f16(float(double(float(p[i])) * factor)); break; }
    default: throw Error(str("loss scaler: tensors of dtype ", name(t.dtype()), " cannot be scaled"));
  }
}

void scale_any(Tensor& t, double factor) {
  if (t.device().is_cpu()) {
    HALO_CHECK(t.is_dense(), "loss scaler: tensor of shape ", t.shape(), " is not dense");
    scale_cpu(t, factor);
  } else {
    scale_inplace(t, factor);  // the device kernel behind the optimizers
  }
}

}  // namespace

bool grads_finite(const std::vector<nn::Parameter*>& params) {
  std::vector<const Tensor*> on_device;
  for (const nn::Parameter* p : params) {
    if (!p->grad.defined()) continue;
    if (p->grad.device().is_cpu()) {
      if (!finite_cpu(p->grad)) return false;
    } else {
      on_device.push_back(&p->grad);
    }
  }
  // Reduced on the device in double, all gradients of a device in one reduction (one host
  // synchronisation): the square of a finite f32/bf16 value cannot overflow a double, and
  // their sum over any tensor Halo can hold stays far below its range, while an inf or NaN
  // anywhere makes the sum inf or NaN.
  return std::isfinite(sum_squares(on_device));
}

DynamicLossScaler::DynamicLossScaler(std::vector<nn::Parameter*> params, LossScalerOptions options)
    : params_(std::move(params)), opt_(options), scale_(options.init_scale) {
  HALO_CHECK_T(ConfigError, opt_.init_scale > 0 && std::isfinite(opt_.init_scale),
               "LossScalerOptions::init_scale must be positive and finite, got ", opt_.init_scale);
  HALO_CHECK_T(ConfigError, opt_.growth_factor >= 1, "LossScalerOptions::growth_factor must be >= 1, got ",
               opt_.growth_factor);
  HALO_CHECK_T(ConfigError, opt_.backoff_factor > 0 && opt_.backoff_factor < 1,
               "LossScalerOptions::backoff_factor must lie in (0, 1), got ", opt_.backoff_factor);
  HALO_CHECK_T(ConfigError, opt_.growth_interval >= 1, "LossScalerOptions::growth_interval must be >= 1, got ",
               opt_.growth_interval);
  HALO_CHECK_T(ConfigError, opt_.min_scale > 0 && opt_.min_scale <= opt_.max_scale,
               "LossScalerOptions: need 0 < min_scale <= max_scale, got ", opt_.min_scale, " and ", opt_.max_scale);
  for (size_t k = 0; k < params_.size(); ++k)
    HALO_CHECK_T(ConfigError, params_[k] != nullptr, "DynamicLossScaler: parameter #", k, " is null");
}

Tensor DynamicLossScaler::scale_loss_grad(const Tensor& dloss) const {
  HALO_CHECK(dloss.defined(), "DynamicLossScaler::scale_loss_grad: undefined loss gradient");
  Tensor out = Tensor::empty_like(dloss);
  out.copy_(dloss);
  scale_any(out, scale_);
  return out;
}

bool DynamicLossScaler::unscale() {
  if (!grads_finite(params_)) return false;
  const double inv = 1.0 / scale_;
  for (nn::Parameter* p : params_)
    if (p->grad.defined()) scale_any(p->grad, inv);
  return true;
}

void DynamicLossScaler::update(bool overflow) {
  if (overflow) {
    scale_ = std::max(opt_.min_scale, scale_ * opt_.backoff_factor);
    clean_ = 0;
    ++skipped_;
    return;
  }
  if (++clean_ >= opt_.growth_interval) {
    scale_ = std::min(opt_.max_scale, scale_ * opt_.growth_factor);
    clean_ = 0;
  }
}

bool DynamicLossScaler::step(Optimizer& optimizer) {
  const bool finite = unscale();
  if (finite) optimizer.step();
  update(!finite);
  return finite;
}

StateDict DynamicLossScaler::state() const {
  StateDict s;
  s["loss_scaler/scale"] = Tensor::full({}, scale_, DType::f64);
  s["loss_scaler/clean_steps"] = Tensor::full({}, double(clean_), DType::i64);
  s["loss_scaler/skipped_steps"] = Tensor::full({}, double(skipped_), DType::i64);
  return s;
}

void DynamicLossScaler::load_state(const StateDict& state) {
  for (const char* key : {"loss_scaler/scale", "loss_scaler/clean_steps", "loss_scaler/skipped_steps"})
    HALO_CHECK_T(ConfigError, state.count(key), "DynamicLossScaler::load_state: entry '", key, "' is missing");
  const double s = state.at("loss_scaler/scale").item();
  HALO_CHECK_T(ConfigError, s > 0 && std::isfinite(s), "DynamicLossScaler::load_state: scale ", s, " is not positive");
  scale_ = s;
  clean_ = int64_t(state.at("loss_scaler/clean_steps").item());
  skipped_ = int64_t(state.at("loss_scaler/skipped_steps").item());
}

}  // namespace halo::optim
