#include "halo/tensor/tensor.hpp"

#include <algorithm>
#include <cstring>
#include <numeric>

namespace halo {

Device Device::parse(const std::string& s) {
  if (s == "cpu") return cpu();
  if (s == "cuda" || s == "gpu") return cuda(0);
  if (s.rfind("cuda:", 0) == 0) {
    try {
      return cuda(std::stoi(s.substr(5)));
    } catch (const std::exception&) {
    }
  }
  throw ConfigError("unknown device '" + s + "' (expected cpu, cuda or cuda:N)");
}

// ---- Storage -----------------------------------------------------------------

Storage::Storage(size_t bytes, Device dev) : bytes_(bytes), device_(dev) {
  ptr_ = allocator_for(dev).allocate(bytes);
}
Storage::Storage(void* ptr, size_t bytes, Device dev, std::function<void()> release)
    : ptr_(ptr), bytes_(bytes), device_(dev), owned_(false), release_(std::move(release)) {}
Storage::~Storage() {
  if (owned_)
    allocator_for(device_).deallocate(ptr_, bytes_);
  else if (release_)
    release_();
}

// ---- creation -------------------------------------------------------------------

Tensor Tensor::empty_strided(const Shape& shape, const Strides& strides, DType dtype, Device dev) {
  HALO_CHECK_SHAPE(shape.size() == strides.size(), "empty_strided: shape ", to_string(shape), " and strides ",
                   to_string(strides), " differ in rank");
  int64_t extent = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    HALO_CHECK_SHAPE(shape[i] >= 0, "negative dimension in shape ", to_string(shape));
    if (shape[i] == 0) extent = 0;
  }
  if (extent != 0)
    for (size_t i = 0; i < shape.size(); ++i) extent += (shape[i] - 1) * strides[i];
  Tensor t;
  t.storage_ = std::make_shared<Storage>(size_t(std::max<int64_t>(extent, 1)) * size_of(dtype), dev);
  t.shape_ = shape;
  t.strides_ = strides;
  t.dtype_ = dtype;
  return t;
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device dev, MemoryFormat fmt) {
  return empty_strided(shape, fmt == MemoryFormat::channels_last ? channels_last_strides(shape)
                                                                 : contiguous_strides(shape),
                       dtype, dev);
}

Tensor Tensor::empty_like(const Tensor& like) {
  HALO_CHECK(like.defined(), "empty_like of an undefined tensor");
  return empty(like.shape_, like.dtype_, like.device(), like.memory_format());
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device dev, MemoryFormat fmt) {
  Tensor t = empty(shape, dtype, dev, fmt);
  t.zero_();
  return t;
}

Tensor Tensor::zeros_like(const Tensor& like) {
  Tensor t = empty_like(like);
  t.zero_();
  return t;
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device dev) {
  Tensor t = empty(shape, dtype, dev);
  t.fill_(value);
  return t;
}

Tensor Tensor::from_blob(void* data, const Shape& shape, DType dtype, Device dev, Strides strides,
                         std::function<void()> release) {
  if (strides.empty()) strides = contiguous_strides(shape);
  HALO_CHECK_SHAPE(strides.size() == shape.size(), "from_blob: strides ", to_string(strides),
                   " do not match shape ", to_string(shape));
  Tensor t;
  size_t extent = 1;
  for (size_t i = 0; i < shape.size(); ++i) extent += size_t((shape[i] - 1) * strides[i]);
  t.storage_ = std::make_shared<Storage>(data, extent * size_of(dtype), dev, std::move(release));
  t.shape_ = shape;
  t.strides_ = strides;
  t.dtype_ = dtype;
  return t;
}

// ---- description ------------------------------------------------------------------

int64_t Tensor::size(int d) const {
  int n = dim();
  if (d < 0) d += n;
  HALO_CHECK_SHAPE(d >= 0 && d < n, "dimension ", d, " out of range for ", str());
  return shape_[size_t(d)];
}

Device Tensor::device() const { return storage_ ? storage_->device() : Device::cpu(); }

static bool strides_match(const Shape& shape, const Strides& have, const Strides& want) {
  for (size_t i = 0; i < shape.size(); ++i)
    if (shape[i] != 1 && have[i] != want[i]) return false;
  return true;
}

bool Tensor::is_contiguous() const { return strides_match(shape_, strides_, contiguous_strides(shape_)); }
bool Tensor::is_channels_last() const {
  return dim() >= 3 && strides_match(shape_, strides_, channels_last_strides(shape_));
}
bool Tensor::is_dense() const {
  if (is_contiguous() || is_channels_last()) return true;
  std::vector<size_t> order(shape_.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return strides_[a] > strides_[b]; });
  int64_t expect = 1;
  for (size_t k = order.size(); k-- > 0;) {
    size_t i = order[k];
    if (shape_[i] == 1) continue;
    if (strides_[i] != expect) return false;
    expect *= shape_[i];
  }
  return true;
}

std::string Tensor::str() const {
  if (!defined()) return "undefined";
  std::string s = std::string(name(dtype_)) + to_string(shape_) + " " + device().str();
  if (memory_format() == MemoryFormat::channels_last) s += " channels_last";
  return s;
}

void* Tensor::raw_data() const {
  HALO_CHECK(defined(), "data of an undefined tensor");
  return static_cast<char*>(storage_->data()) + offset_ * int64_t(size_of(dtype_));
}

// ---- views ------------------------------------------------------------------------

Tensor Tensor::reshape(const Shape& shape) const {
  Shape s = shape;
  int64_t known = 1;
  int infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      HALO_CHECK_SHAPE(infer < 0, "reshape: more than one -1 in ", to_string(shape));
      infer = int(i);
    } else {
      known *= s[i];
    }
  }
  if (infer >= 0) {
    HALO_CHECK_SHAPE(known > 0 && numel() % known == 0, "reshape ", str(), " to ", to_string(shape));
    s[size_t(infer)] = numel() / known;
  }
  HALO_CHECK_SHAPE(halo::numel(s) == numel(), "reshape ", str(), " to ", to_string(shape),
                   ": element counts differ");
  Tensor src = is_contiguous() ? *this : contiguous();
  Tensor t = src;
  t.shape_ = s;
  t.strides_ = contiguous_strides(s);
  return t;
}

Tensor Tensor::slice(int64_t begin, int64_t end) const {
  HALO_CHECK_SHAPE(dim() >= 1 && begin >= 0 && begin <= end && end <= shape_[0], "slice [", begin, ",", end,
                   ") of ", str());
  Tensor t = *this;
  t.offset_ += begin * strides_[0];
  t.shape_[0] = end - begin;
  return t;
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return to_memory_format(MemoryFormat::contiguous);
}

Tensor Tensor::to_memory_format(MemoryFormat fmt) const {
  if (fmt == MemoryFormat::contiguous && is_contiguous()) return *this;
  if (fmt == MemoryFormat::channels_last && is_channels_last()) return *this;
  Tensor t = empty(shape_, dtype_, device(), fmt);
  t.copy_(*this);
  return t;
}

Tensor Tensor::clone() const {
  Tensor t = empty(shape_, dtype_, device(), memory_format());
  t.copy_(*this);
  return t;
}

Tensor Tensor::to(DType dtype) const {
  if (dtype == dtype_) return *this;
  Tensor t = empty(shape_, dtype, device(), memory_format());
  t.copy_(*this);
  return t;
}

Tensor Tensor::to(Device dev) const {
  if (dev == device()) return *this;
  Tensor t = empty(shape_, dtype_, dev, memory_format());
  t.copy_(*this);
  return t;
}

// ---- copies ----------------------------------------------------------------------

namespace {

template <class T>
double load_as_double(const void* p, int64_t i) {
  return double(static_cast<const T*>(p)[i]);
}
template <class T>
void store_from_double(void* p, int64_t i, double v) {
  static_cast<T*>(p)[i] = T(float(v));
}
template <>
void store_from_double<double>(void* p, int64_t i, double v) {
  static_cast<double*>(p)[i] = v;
}
template <>
void store_from_double<int64_t>(void* p, int64_t i, double v) {
  static_cast<int64_t*>(p)[i] = int64_t(v);
}
template <>
void store_from_double<int32_t>(void* p, int64_t i, double v) {
  static_cast<int32_t*>(p)[i] = int32_t(v);
}
template <>
void store_from_double<uint8_t>(void* p, int64_t i, double v) {
  static_cast<uint8_t*>(p)[i] = uint8_t(v);
}
template <>
double load_as_double<bf16>(const void* p, int64_t i) {
  return double(float(static_cast<const bf16*>(p)[i]));
}
template <>
double load_as_double<f16>(const void* p, int64_t i) {
  return double(float(static_cast<const f16*>(p)[i]));
}

using Loader = double (*)(const void*, int64_t);
using Storer = void (*)(void*, int64_t, double);

Loader loader(DType t) {
  switch (t) {
    case DType::f32: return load_as_double<float>;
    case DType::f64: return load_as_double<double>;
    case DType::bf16: return load_as_double<bf16>;
    case DType::f16: return load_as_double<f16>;
    case DType::i32: return load_as_double<int32_t>;
    case DType::i64: return load_as_double<int64_t>;
    case DType::u8: return load_as_double<uint8_t>;
  }
  return nullptr;
}
Storer storer(DType t) {
  switch (t) {
    case DType::f32: return store_from_double<float>;
    case DType::f64: return store_from_double<double>;
    case DType::bf16: return store_from_double<bf16>;
    case DType::f16: return store_from_double<f16>;
    case DType::i32: return store_from_double<int32_t>;
    case DType::i64: return store_from_double<int64_t>;
    case DType::u8: return store_from_double<uint8_t>;
  }
  return nullptr;
}

// Visits every logical index of `shape`, giving the element offsets in two stride sets.
template <class F>
void for_each_offset(const Shape& shape, const Strides& a, const Strides& b, F&& f) {
  const int n = int(shape.size());
  if (halo::numel(shape) == 0) return;
  if (n == 0) {
    f(int64_t(0), int64_t(0), int64_t(1), int64_t(0), int64_t(0));
    return;
  }
  std::vector<int64_t> idx(size_t(n), 0);
  const int64_t inner = shape[size_t(n - 1)];
  const int64_t sa = a[size_t(n - 1)], sb = b[size_t(n - 1)];
  int64_t oa = 0, ob = 0;
  while (true) {
    f(oa, ob, inner, sa, sb);
    int d = n - 2;
    for (; d >= 0; --d) {
      size_t u = size_t(d);
      idx[u]++;
      oa += a[u];
      ob += b[u];
      if (idx[u] < shape[u]) break;
      oa -= a[u] * shape[u];
      ob -= b[u] * shape[u];
      idx[u] = 0;
    }
    if (d < 0) break;
  }
}

}  // namespace

namespace {
// f32 <-> bf16 between dense tensors of one layout: the mixed-precision input cast of every
// batch, so a plain loop the compiler vectorises (and threads share), not one call per element.
bool convert_dense_f32_bf16(const Tensor& src, Tensor& dst) {
  const int64_t n = src.numel();
  if (src.dtype() == DType::f32 && dst.dtype() == DType::bf16) {
    const float* s = static_cast<const float*>(src.raw_data());
    bf16* d = static_cast<bf16*>(dst.raw_data());
#pragma omp parallel for simd schedule(static) if (n > (1 << 16))
    for (int64_t i = 0; i < n; ++i) d[i] = bf16(s[i]);
    return true;
  }
  if (src.dtype() == DType::bf16 && dst.dtype() == DType::f32) {
    const bf16* s = static_cast<const bf16*>(src.raw_data());
    float* d = static_cast<float*>(dst.raw_data());
#pragma omp parallel for simd schedule(static) if (n > (1 << 16))
    for (int64_t i = 0; i < n; ++i) d[i] = float(s[i]);
    return true;
  }
  return false;
}
}  // namespace

void Tensor::copy_(const Tensor& src) {
  HALO_CHECK_SHAPE(defined() && src.defined(), "copy_ with an undefined tensor");
  HALO_CHECK_SHAPE(shape_ == src.shape_, "copy_: destination ", str(), " and source ", src.str(),
                   " differ in shape");
  if (numel() == 0) return;
  const Device dd = device(), sd = src.device();
  if (!(dd.is_cpu() && sd.is_cpu())) {
    // Across or on devices: same dtype and same dense layout go straight through the backend;
    // anything else is staged through the host.
    if (dtype_ == src.dtype_ && strides_ == src.strides_ && is_dense()) {
      const DeviceBackend& be = device_backend(dd.is_cpu() ? sd.kind : dd.kind);
      be.copy(raw_data(), dd, src.raw_data(), sd, nbytes());
      return;
    }
    if (dd == sd) {
      const DeviceBackend& be = device_backend(dd.kind);
      if (be.convert && be.convert(*this, src)) return;
    }
    Tensor host_src = src.device().is_cpu() ? src : src.to(Device::cpu());
    Tensor host_dst = empty(shape_, dtype_, Device::cpu(), memory_format());
    if (strides_ != host_dst.strides_) host_dst = empty_strided(shape_, strides_, dtype_, Device::cpu());
    host_dst.copy_(host_src);
    copy_(host_dst);
    return;
  }
  if (dtype_ == src.dtype_ && strides_ == src.strides_ && is_dense()) {
    std::memcpy(raw_data(), src.raw_data(), nbytes());
    return;
  }
  const size_t es = size_of(dtype_);
  char* dst = static_cast<char*>(raw_data());
  const char* sp = static_cast<const char*>(src.raw_data());
  if (dtype_ == src.dtype_) {
    for_each_offset(shape_, strides_, src.strides_, [&](int64_t od, int64_t os, int64_t n, int64_t sd_, int64_t ss) {
      if (sd_ == 1 && ss == 1) {
        std::memcpy(dst + od * int64_t(es), sp + os * int64_t(es), size_t(n) * es);
      } else {
        for (int64_t i = 0; i < n; ++i)
          std::memcpy(dst + (od + i * sd_) * int64_t(es), sp + (os + i * ss) * int64_t(es), es);
      }
    });
    return;
  }
  if (strides_ == src.strides_ && is_dense() && convert_dense_f32_bf16(src, *this)) return;
  Loader ld = loader(src.dtype_);
  Storer st = storer(dtype_);
  for_each_offset(shape_, strides_, src.strides_, [&](int64_t od, int64_t os, int64_t n, int64_t sd_, int64_t ss) {
    for (int64_t i = 0; i < n; ++i) st(dst, od + i * sd_, ld(sp, os + i * ss));
  });
}

Tensor& Tensor::fill_(double value) {
  HALO_CHECK(defined(), "fill_ of an undefined tensor");
  if (!device().is_cpu()) {
    const DeviceBackend& be = device_backend(device().kind);
    if (be.fill && be.fill(*this, value)) return *this;
    Tensor h = full(shape_, value, dtype_, Device::cpu());
    copy_(h);
    return *this;
  }
  if (is_dense()) {
    const int64_t n = numel();
    void* p = raw_data();
    switch (dtype_) {
      case DType::f32: std::fill_n(static_cast<float*>(p), n, float(value)); break;
      case DType::f64: std::fill_n(static_cast<double*>(p), n, value); break;
      default: {
        Storer st = storer(dtype_);
        for (int64_t i = 0; i < n; ++i) st(p, i, value);
      }
    }
    return *this;
  }
  Storer st = storer(dtype_);
  char* p = static_cast<char*>(raw_data());
  for_each_offset(shape_, strides_, strides_, [&](int64_t o, int64_t, int64_t n, int64_t s, int64_t) {
    for (int64_t i = 0; i < n; ++i) st(p, o + i * s, value);
  });
  return *this;
}

Tensor& Tensor::zero_() {
  if (device().is_cpu() && is_dense()) {
    std::memset(raw_data(), 0, nbytes());
    return *this;
  }
  return fill_(0.0);
}

double Tensor::item() const {
  HALO_CHECK_SHAPE(numel() == 1, "item() of ", str(), ": exactly one element expected");
  return to_vector<double>()[0];
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  Tensor c = to(Device::cpu()).contiguous().to(dtype_of<T>());
  const T* p = c.data<T>();
  return std::vector<T>(p, p + c.numel());
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int32_t> Tensor::to_vector<int32_t>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;
template std::vector<uint8_t> Tensor::to_vector<uint8_t>() const;

void check_shape(const Tensor& t, const Shape& expected, const std::string& who) {
  HALO_CHECK_SHAPE(t.defined(), who, ": expected a tensor of shape ", to_string(expected), ", got none");
  HALO_CHECK_SHAPE(t.shape() == expected, who, ": expected shape ", to_string(expected), ", got ", t.str());
}

void check_same(const Tensor& a, const Tensor& b, const std::string& who) {
  HALO_CHECK_SHAPE(a.defined() && b.defined(), who, ": undefined tensor");
  HALO_CHECK_SHAPE(a.shape() == b.shape() && a.dtype() == b.dtype() && a.device() == b.device(), who,
                   ": tensors differ: ", a.str(), " vs ", b.str());
}

}  // namespace halo
