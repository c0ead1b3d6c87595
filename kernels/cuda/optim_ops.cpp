// The cuda optimizer table: f32 master weights and state (kernels in ops.cu and optim.cu).
#include <cmath>
#include <limits>

#include "cuda/elementwise.hpp"
#include "cuda/optim.hpp"
#include "cuda/register.hpp"
#include "cuda/tensor_ops.hpp"
#include "halo/cuda/runtime.hpp"

namespace halo::kernels::cuda_ops {
namespace {

namespace cuda = halo::cuda;
using namespace halo::optim;

/// Optimizer state and master weights stay f32 on the GPU (mixed precision casts copies).
float* gpu_f32(const Tensor& t, const char* rule) {
  HALO_CHECK_SHAPE(t.dtype() == DType::f32, rule, ": ", t.str(), " must be f32 on the GPU (master weights and ",
                   "optimizer state are kept in f32)");
  return static_cast<float*>(t.raw_data());
}

void sgd_op(Tensor& w, const Tensor& g, Tensor* momentum_buf, const SgdStep& s) {
  cuda::DeviceGuard guard(w.device().index);
  cuda::raw::sgd_update(gpu_f32(w, "sgd_update"), gpu_f32(g, "sgd_update"),
                        momentum_buf ? gpu_f32(*momentum_buf, "sgd_update") : nullptr, w.numel(), float(s.lr),
                        float(s.momentum), float(s.weight_decay), s.nesterov, cuda::stream_of(w));
}

void sgd_many_op(const std::vector<SgdItem>& items, const SgdStep& s) {
  cuda::DeviceGuard guard(items[0].w->device().index);
  std::vector<cuda::raw::SgdTensor> list;
  list.reserve(items.size());
  for (const SgdItem& it : items)
    list.push_back({gpu_f32(*it.w, "sgd_update"), gpu_f32(*it.g, "sgd_update"),
                    it.momentum_buf ? gpu_f32(*it.momentum_buf, "sgd_update") : nullptr, it.w->numel(),
                    float(it.weight_decay)});
  cuda::raw::sgd_update_multi(list.data(), int(list.size()), float(s.lr), float(s.momentum), s.nesterov,
                              cuda::stream_of(*items[0].w));
}

void adam_op(Tensor& w, const Tensor& g, Tensor& m, Tensor& v, const AdamStep& s) {
  cuda::DeviceGuard guard(w.device().index);
  cuda::raw::adam_update(gpu_f32(w, "adam_update"), gpu_f32(g, "adam_update"), gpu_f32(m, "adam_update"),
                         gpu_f32(v, "adam_update"), w.numel(), float(s.lr), float(s.beta1), float(s.beta2),
                         float(s.eps), float(s.weight_decay), s.decoupled, float(s.bias1), float(s.bias2),
                         cuda::stream_of(w));
}

double lamb_op(Tensor& w, const Tensor& g, Tensor& m, Tensor& v, const LambStep& s) {
  // Two passes; the trust ratio is formed on the device between them (no host in the loop).
  const char* r = "lamb_update";
  cuda::DeviceGuard guard(w.device().index);
  Tensor sums = Tensor::zeros({3}, DType::f64, w.device());  // ||w||^2, ||u||^2, and the ratio when read back
  const float ib1 = float(1.0 / s.bias1), ib2 = float(1.0 / s.bias2);
  cuda::raw::lamb_moments(gpu_f32(w, r), gpu_f32(g, r), gpu_f32(m, r), gpu_f32(v, r), w.numel(), float(s.beta1),
                          float(s.beta2), float(s.eps), float(s.weight_decay), ib1, ib2, sums.data<double>(),
                          cuda::stream_of(w));
  double* trust = s.device_trust ? s.device_trust : sums.data<double>() + 2;
  cuda::raw::lamb_apply(gpu_f32(w, r), gpu_f32(m, r), gpu_f32(v, r), w.numel(), float(s.eps), float(s.weight_decay),
                        ib1, ib2, float(s.lr), float(s.max_trust), sums.data<double>(), trust, cuda::stream_of(w));
  if (s.device_trust) return std::numeric_limits<double>::quiet_NaN();
  return sums.to_vector<double>()[2];
}

double lars_op(Tensor& w, const Tensor& g, Tensor& v, const LarsStep& s) {
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

double sum_squares_op(const std::vector<const Tensor*>& ts) {
  if (ts.empty()) return 0;
  // Every tensor's squares added into one device double on the current stream, read once.
  const Device dev = ts.front()->device();
  cuda::DeviceGuard guard(dev.index);
  Tensor acc = Tensor::zeros({1}, DType::f64, dev);
  auto* out = static_cast<double*>(acc.raw_data());
  for (const Tensor* t : ts) {
    const bool bf = cuda::is_bf16(*t, "sum_squares");
    cuda::raw::dot(t->raw_data(), t->raw_data(), t->numel(), bf, out, cuda::stream_of(*t));
  }
  return acc.item();
}

void scale_op(Tensor& t, double factor) {
  cuda::scale(t, float(factor));
}

const ops::OptimKernels kTable = {sgd_op, sgd_many_op, adam_op, lamb_op, lars_op, sum_squares_op, scale_op};

}  // namespace

void register_optim(ops::OpTable& t) { t.optim = &kTable; }

}  // namespace halo::kernels::cuda_ops
