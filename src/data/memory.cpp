#include "halo/data/memory.hpp"

#include <cmath>
#include <cstring>

namespace halo::data {

void check_sample_values(const Dataset& ds, int64_t i, const float* x, const void* y) {
  const int64_t n = numel(ds.sample_shape());
  for (int64_t k = 0; k < n; ++k)
    if (!std::isfinite(x[k])) throw BadSampleError(ds.describe(i), i, str("value ", x[k], " at element ", k));
  if (ds.label_dtype() == DType::f32) {
    const auto* t = static_cast<const float*>(y);
    const int64_t m = numel(ds.label_shape());
    for (int64_t k = 0; k < m; ++k)
      if (!std::isfinite(t[k])) throw BadSampleError(ds.describe(i), i, str("label value ", t[k], " at element ", k));
  }
}

void reorder_channels(const float* in, float* out, int64_t channels, int64_t spatial, bool to_channels_last) {
  if (to_channels_last) {
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t s = 0; s < spatial; ++s) out[s * channels + c] = in[c * spatial + s];
  } else {
    for (int64_t s = 0; s < spatial; ++s)
      for (int64_t c = 0; c < channels; ++c) out[c * spatial + s] = in[s * channels + c];
  }
}

namespace {

// Channels and the product of the spatial extents of a (C, spatial...) sample.
std::pair<int64_t, int64_t> channels_spatial(const Shape& sample) {
  const int64_t c = sample.empty() ? 1 : sample[0];
  return {c, c > 0 ? numel(sample) / c : 0};
}

// Copies a sample held in `stored_last` order into `x` in the asked order.
void deliver(const float* src, float* x, const Shape& sample, bool stored_last, bool want_last) {
  if (stored_last == want_last || sample.size() < 2) {
    std::memcpy(x, src, size_t(numel(sample)) * sizeof(float));
    return;
  }
  auto [c, s] = channels_spatial(sample);
  reorder_channels(src, x, c, s, want_last);
}

}  // namespace

ArrayDataset::ArrayDataset(Tensor x, Tensor y, std::string name) : name_(std::move(name)) {
  HALO_CHECK_T(ConfigError, x.defined() && y.defined(), "ArrayDataset '", name_, "': x and y must be defined");
  HALO_CHECK_T(ConfigError, x.device().is_cpu() && y.device().is_cpu(), "ArrayDataset '", name_,
               "': x and y must be CPU tensors (got ", x.device().str(), " and ", y.device().str(), ")");
  HALO_CHECK_T(ConfigError, x.dtype() == DType::f32, "ArrayDataset '", name_, "': x must be float32, got ",
               halo::name(x.dtype()));
  HALO_CHECK_T(ConfigError, y.dtype() == DType::f32 || y.dtype() == DType::i32, "ArrayDataset '", name_,
               "': y must be float32 (targets) or int32 (class maps), got ", halo::name(y.dtype()));
  HALO_CHECK_T(ConfigError, x.dim() >= 2 && y.dim() >= 1, "ArrayDataset '", name_,
               "': x must be (N, C, spatial...) and y (N, ...), got ", to_string(x.shape()), " and ",
               to_string(y.shape()));
  HALO_CHECK_T(ConfigError, x.size(0) == y.size(0), "ArrayDataset '", name_, "': x has ", x.size(0),
               " samples but y has ", y.size(0));
  n_ = x.size(0);
  sample_shape_.assign(x.shape().begin() + 1, x.shape().end());
  label_shape_.assign(y.shape().begin() + 1, y.shape().end());
  if (label_shape_.empty()) label_shape_ = {1};
  // Shared when each sample is one dense block in (C, spatial...) or (spatial..., C) order.
  channels_last_ = x.dim() >= 3 && !x.is_contiguous() && x.is_channels_last();
  x_ = x.is_contiguous() || channels_last_ ? x : x.contiguous();
  y_ = y.is_contiguous() ? y : y.contiguous();
}

void ArrayDataset::read(int64_t i, float* x, void* y, ReadScratch&, bool channels_last) const {
  HALO_CHECK_T(IOError, i >= 0 && i < n_, "ArrayDataset '", name_, "': sample ", i, " out of range [0, ", n_, ")");
  const int64_t xn = numel(sample_shape_);
  deliver(x_.data<float>() + i * xn, x, sample_shape_, channels_last_, channels_last);
  const size_t yb = label_bytes();
  std::memcpy(y, static_cast<const unsigned char*>(y_.raw_data()) + size_t(i) * yb, yb);
  if (check_values_) check_sample_values(*this, i, x, y);
}

std::string ArrayDataset::describe(int64_t i) const { return str("array '", name_, "', sample ", i); }

CallbackDataset::CallbackDataset(Spec spec, ReadFn read) : spec_(std::move(spec)), read_(std::move(read)) {
  HALO_CHECK_T(ConfigError, read_ != nullptr, "CallbackDataset '", spec_.name, "': no read function");
  HALO_CHECK_T(ConfigError, spec_.size >= 0 && !spec_.sample_shape.empty() && !spec_.label_shape.empty(),
               "CallbackDataset '", spec_.name, "': give size, sample_shape (C, spatial...) and label_shape");
  HALO_CHECK_T(ConfigError, spec_.label_dtype == DType::f32 || spec_.label_dtype == DType::i32, "CallbackDataset '",
               spec_.name, "': labels are float32 or int32");
}

void CallbackDataset::read(int64_t i, float* x, void* y, ReadScratch& scratch, bool channels_last) const {
  HALO_CHECK_T(IOError, i >= 0 && i < spec_.size, "CallbackDataset '", spec_.name, "': sample ", i,
               " out of range [0, ", spec_.size, ")");
  if (channels_last == spec_.channels_last || spec_.sample_shape.size() < 2) {
    read_(i, x, y);
  } else {
    const size_t bytes = size_t(numel(spec_.sample_shape)) * sizeof(float);
    if (scratch.raw.size() < bytes) scratch.raw.resize(bytes);
    auto* tmp = reinterpret_cast<float*>(scratch.raw.data());
    read_(i, tmp, y);
    deliver(tmp, x, spec_.sample_shape, spec_.channels_last, channels_last);
  }
  if (spec_.check_values) check_sample_values(*this, i, x, y);
}

std::string CallbackDataset::describe(int64_t i) const { return str(spec_.name, ", sample ", i); }

}  // namespace halo::data
