// Tensor: a logical shape with strides over shared, device-resident storage.
//
// The logical shape of activations is always (N, C, spatial...); the memory format says
// how it is laid out: contiguous (NCDHW) or channels-last (NDHWC), which the CPU kernels
// prefer. Element-wise code may treat any dense tensor as a flat array.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "halo/tensor/allocator.hpp"
#include "halo/tensor/device.hpp"
#include "halo/tensor/dtype.hpp"
#include "halo/tensor/shape.hpp"

namespace halo {

enum class MemoryFormat { contiguous, channels_last };

/// A block of memory on one device; frees itself through its allocator or release hook.
class Storage {
 public:
  Storage(size_t bytes, Device dev);
  /// Wraps memory owned elsewhere; `release` (may be empty) runs when the last tensor goes.
  Storage(void* ptr, size_t bytes, Device dev, std::function<void()> release);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
  Device device_;
  bool owned_ = true;
  std::function<void()> release_;
};

class Tensor {
 public:
  Tensor() = default;

  // ---- creation ----
  static Tensor empty(const Shape& shape, DType dtype = DType::f32, Device dev = Device::cpu(),
                      MemoryFormat fmt = MemoryFormat::contiguous);
  static Tensor empty_strided(const Shape& shape, const Strides& strides, DType dtype = DType::f32,
                              Device dev = Device::cpu());
  /// Same shape, dtype, device and memory format as `like`.
  static Tensor empty_like(const Tensor& like);
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device dev = Device::cpu(),
                      MemoryFormat fmt = MemoryFormat::contiguous);
  static Tensor zeros_like(const Tensor& like);
  static Tensor full(const Shape& shape, double value, DType dtype = DType::f32, Device dev = Device::cpu());
  /// Wraps existing memory without copying (strides default to contiguous).
  static Tensor from_blob(void* data, const Shape& shape, DType dtype, Device dev = Device::cpu(),
                          Strides strides = {}, std::function<void()> release = {});
  /// Copies host values into a new CPU tensor (logical row-major order).
  template <class T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape);

  // ---- description ----
  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  const Strides& strides() const { return strides_; }
  int dim() const { return int(shape_.size()); }
  /// Size of dimension d; negative d counts from the end.
  int64_t size(int d) const;
  int64_t numel() const { return halo::numel(shape_); }
  size_t nbytes() const { return size_t(numel()) * size_of(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const;
  bool is_contiguous() const;
  bool is_channels_last() const;
  /// Dense: the elements fill numel() consecutive slots (some permutation of dimensions).
  bool is_dense() const;
  MemoryFormat memory_format() const { return is_channels_last() && !is_contiguous() ? MemoryFormat::channels_last : MemoryFormat::contiguous; }
  /// "f32[4,32,128,128,128] cpu channels_last"
  std::string str() const;

  // ---- data ----
  void* raw_data() const;
  template <class T>
  T* data() const {
    HALO_CHECK_SHAPE(dtype_of<T>() == dtype_, "tensor ", str(), " accessed as ", name(dtype_of<T>()));
    return static_cast<T*>(raw_data());
  }
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  int64_t offset() const { return offset_; }

  // ---- views and copies ----
  /// A view with a new shape (one entry may be -1) when the tensor is contiguous, else a copy.
  Tensor reshape(const Shape& shape) const;
  /// Rows [begin, end) of the first dimension, as a view.
  Tensor slice(int64_t begin, int64_t end) const;
  Tensor contiguous() const;
  Tensor to_memory_format(MemoryFormat fmt) const;
  Tensor clone() const;
  Tensor to(DType dtype) const;
  Tensor to(Device dev) const;
  /// Copies values (converting dtype and layout, across devices) from a tensor of the same shape.
  void copy_(const Tensor& src);
  Tensor& fill_(double value);
  Tensor& zero_();

  /// The single value of a one-element tensor, as double.
  double item() const;
  /// All values in logical row-major order, converted to T (copies from devices).
  template <class T>
  std::vector<T> to_vector() const;

 private:
  std::shared_ptr<Storage> storage_;
  int64_t offset_ = 0;  // in elements
  Shape shape_;
  Strides strides_;
  DType dtype_ = DType::f32;
};

/// Throws ShapeError naming `who` unless t is defined with the given shape.
void check_shape(const Tensor& t, const Shape& expected, const std::string& who);
/// Throws ShapeError naming `who` unless a and b agree in shape, dtype and device.
void check_same(const Tensor& a, const Tensor& b, const std::string& who);

template <class T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape) {
  HALO_CHECK_SHAPE(int64_t(values.size()) == halo::numel(shape), "from_vector: ", values.size(),
                   " values for shape ", to_string(shape));
  Tensor t = empty(shape, dtype_of<T>());
  std::copy(values.begin(), values.end(), t.data<T>());
  return t;
}

}  // namespace halo
