// The cuda BatchNorm table (kernels in batchnorm.cu).
#include <cmath>

#include "batchnorm_stats.hpp"
#include "cuda/register.hpp"
#include "dense.hpp"
#include "cuda/batchnorm.hpp"
#include "cuda/tensor_ops.hpp"
#include "halo/cuda/runtime.hpp"

namespace halo::ops::cuda_kernels {
namespace {

namespace cuda = halo::cuda;
using detail::batch_stats;
using detail::update_running;

// ---- CUDA: the per-element passes and per-channel sums run on the device. Without a
// StatsReducer (and with f32 parameters and running statistics, as mixed precision keeps
// them) the O(C) statistics algebra runs on the device too, in f64 with the host's formulas
// (batchnorm.cu's *_coefficients kernels): no host round trip in the step, which an eager
// step otherwise pays about fifteen times per BatchNorm and a CUDA graph cannot hold at all.
// With a reducer (synchronised BatchNorm) the per-channel sums are copied to the host
// (2C + 1 doubles), because the StatsReducer contract is a host buffer (MPI allreduce), the
// algebra runs there in f64 exactly as on the CPU, and the derived per-channel
// coefficients go back as C floats.

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

const float* f32_or_null(const Tensor& t) { return t.defined() ? static_cast<const float*>(t.raw_data()) : nullptr; }
bool f32_or_undefined(const Tensor& t) { return !t.defined() || (t.dtype() == DType::f32 && t.is_contiguous()); }

/// The statistics algebra can stay on the device (see the top of this file).
bool on_device(const Tensor& weight, const Tensor& bias, const Tensor& running_mean, const Tensor& running_var,
               const StatsReducer& reducer) {
  return !reducer && f32_or_undefined(weight) && f32_or_undefined(bias) && f32_or_undefined(running_mean) &&
         f32_or_undefined(running_var);
}

/// The affine pass from device scale and shift.
Tensor gpu_affine(const GpuInput& in, const Tensor& scale, const Tensor& shift, bool relu) {
  Tensor y = Tensor::empty_like(in.x);
  cuda::raw::bn_affine(in.x.raw_data(), y.raw_data(), in.bf16, in.layout, scale.data<float>(), shift.data<float>(),
                       relu, cuda::stream_of(in.x));
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
  if (on_device(weight, bias, running_mean, running_var, reducer)) {
    const double count = double(C ? in.x.numel() / C : 0);
    HALO_CHECK_SHAPE(count > 1, who, ": training needs more than one value per channel, got ", count, " for input ",
                     x_in.str(), " (use a larger batch, or eval mode)");
    const bool running = running_mean.defined() && running_var.defined();
    BatchNormSaved s;
    s.count = count;
    s.batch_stats = true;
    s.device_mean = Tensor::empty({C}, DType::f64, in.x.device());
    s.device_invstd = Tensor::empty({C}, DType::f64, in.x.device());
    Tensor scale = Tensor::empty({C}, DType::f32, in.x.device()), shift = Tensor::empty({C}, DType::f32, in.x.device());
    cuda::DeviceGuard guard(in.x.device().index);
    cuda::raw::bn_train_coefficients(acc.data<double>(), count, C, cfg.eps, cfg.momentum, f32_or_null(weight),
                                     f32_or_null(bias), running ? running_mean.data<float>() : nullptr,
                                     running ? running_var.data<float>() : nullptr, s.device_mean.data<double>(),
                                     s.device_invstd.data<double>(), scale.data<float>(), shift.data<float>(),
                                     cuda::stream_of(in.x));
    Tensor y = gpu_affine(in, scale, shift, cfg.relu);
    if (saved) *saved = std::move(s);
    return y;
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
  if (on_device(weight, bias, running_mean, running_var, {})) {
    s.device_mean = Tensor::empty({C}, DType::f64, in.x.device());
    s.device_invstd = Tensor::empty({C}, DType::f64, in.x.device());
    Tensor scale = Tensor::empty({C}, DType::f32, in.x.device()), shift = Tensor::empty({C}, DType::f32, in.x.device());
    cuda::DeviceGuard guard(in.x.device().index);
    cuda::raw::bn_eval_coefficients(running_mean.data<float>(), running_var.data<float>(), C, cfg.eps,
                                    f32_or_null(weight), f32_or_null(bias), s.device_mean.data<double>(),
                                    s.device_invstd.data<double>(), scale.data<float>(), shift.data<float>(),
                                    cuda::stream_of(in.x));
    Tensor y = gpu_affine(in, scale, shift, cfg.relu);
    if (saved) *saved = std::move(s);
    return y;
  }
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
  const bool device_stats = saved.device_mean.defined();
  const size_t saved_channels = device_stats ? size_t(saved.device_mean.numel()) : saved.mean.size();
  HALO_CHECK_SHAPE(saved_channels == size_t(C) && (device_stats || saved.invstd.size() == size_t(C)), who,
                   ": backward without a matching forward (saved statistics for ", saved_channels,
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

  if (device_stats) {
    // The forward kept its statistics on the device (no reducer): so does the backward.
    HALO_CHECK_SHAPE(f32_or_undefined(weight), who, ": weight ", weight.str(), " should be f32 here");
    HALO_CHECK(!(reducer && saved.batch_stats), who,
               ": backward with a statistics reducer after a forward without one (both passes use one group)");
    Tensor acc = Tensor::zeros({2 * C}, DType::f64, in.x.device());
    cuda::raw::bn_grad_sums(dy.raw_data(), in.x.raw_data(), mask, in.bf16, in.layout, saved.device_mean.data<double>(),
                            acc.data<double>(), stream);
    BatchNormGrads out;
    out.dbias = Tensor::empty({C}, DType::f32, in.x.device());
    out.dweight = Tensor::empty({C}, DType::f32, in.x.device());
    Tensor k = Tensor::empty({C}, DType::f32, in.x.device()), p = Tensor::empty({C}, DType::f32, in.x.device());
    Tensor q = Tensor::empty({C}, DType::f32, in.x.device());
    cuda::raw::bn_backward_coefficients(acc.data<double>(), saved.device_mean.data<double>(),
                                        saved.device_invstd.data<double>(), f32_or_null(weight), saved.count,
                                        saved.batch_stats, C, out.dbias.data<float>(), out.dweight.data<float>(),
                                        k.data<float>(), p.data<float>(), q.data<float>(), stream);
    const DType pdt = weight.defined() ? weight.dtype() : x_in.dtype();
    if (pdt != DType::f32) {
      out.dbias = cuda::cast(out.dbias, pdt);
      out.dweight = cuda::cast(out.dweight, pdt);
    }
    if (!need_dx) return out;
    out.dx = Tensor::empty_like(in.x);
    cuda::raw::bn_grad_input(dy.raw_data(), in.x.raw_data(), mask, out.dx.raw_data(), in.bf16, in.layout,
                             k.data<float>(), p.data<float>(), q.data<float>(), stream);
    return out;
  }
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

}  // namespace
}  // namespace halo::ops::cuda_kernels

namespace halo::kernels::cuda_ops {

void register_batchnorm(ops::OpTable& t) {
  static const ops::BatchNormKernels k = {ops::cuda_kernels::gpu_forward_train, ops::cuda_kernels::gpu_forward_eval,
                                          ops::cuda_kernels::gpu_backward};
  t.batchnorm = &k;
}

}  // namespace halo::kernels::cuda_ops
