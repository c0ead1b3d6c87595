// Data sources in memory: arrays a program already holds (ArrayDataset) and samples made on
// demand by a function (CallbackDataset). Both implement data::Dataset, so the DataLoader
// shards, pads, prefetches and stages them exactly as it does HDF5 files:
//
//   Tensor x = ...;  // f32 (N, C, D, H, W), e.g. fields of a simulation
//   Tensor y = ...;  // f32 (N, L) targets, or i32 (N, D, H, W) class maps
//   auto ds = std::make_shared<data::ArrayDataset>(x, y, "fields");
//   data::DataLoader loader(ds, {.batch_size = 4, .comm = comm});
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "halo/data/source.hpp"
#include "halo/tensor/tensor.hpp"

namespace halo::data {

/// Samples are the rows of two CPU tensors: x f32 (N, C, spatial...) and y f32 (N, L) or i32
/// (N, spatial...). The tensors are shared, not copied, when x is contiguous or channels-last
/// and y contiguous, so later writes to them are seen by later reads (an in-situ code may
/// refill them between epochs); other layouts are copied once at construction. A
/// channels-last x is delivered channels-last without a transpose.
class ArrayDataset : public Dataset {
 public:
  ArrayDataset(Tensor x, Tensor y, std::string name = "arrays");

  int64_t size() const override { return n_; }
  const Shape& sample_shape() const override { return sample_shape_; }
  const Shape& label_shape() const override { return label_shape_; }
  DType label_dtype() const override { return y_.dtype(); }
  bool channels_stored_last() const override { return channels_last_; }
  void read(int64_t i, float* x, void* y, ReadScratch& scratch, bool channels_last = false) const override;
  std::string describe(int64_t i) const override;

  /// Finite-value checks on every read (on by default): a NaN or infinite value in a sample
  /// or a float label is a BadSampleError, which the loader can skip. Set before sharing.
  void set_check_values(bool on) { check_values_ = on; }
  const Tensor& x() const { return x_; }
  const Tensor& y() const { return y_; }

 private:
  Tensor x_, y_;
  std::string name_;
  int64_t n_ = 0;
  Shape sample_shape_, label_shape_;
  bool channels_last_ = false;
  bool check_values_ = true;
};

/// Samples produced by a function: `read(i, x, y)` fills sample i (numel(sample_shape)
/// floats, in (C, spatial...) order, or (spatial..., C) with `channels_last`) and its label
/// (numel(label_shape) floats or int32). The loader calls it from several threads at once:
/// it must be thread-safe. It may throw BadSampleError to have a sample skipped.
class CallbackDataset : public Dataset {
 public:
  using ReadFn = std::function<void(int64_t i, float* x, void* y)>;
  struct Spec {
    int64_t size = 0;
    Shape sample_shape;  ///< (C, spatial...)
    Shape label_shape;   ///< (L) or (spatial...)
    DType label_dtype = DType::f32;
    bool channels_last = false;  ///< read() writes (spatial..., C)
    bool check_values = true;    ///< finite-value checks after every read
    std::string name = "callback";
  };
  CallbackDataset(Spec spec, ReadFn read);

  int64_t size() const override { return spec_.size; }
  const Shape& sample_shape() const override { return spec_.sample_shape; }
  const Shape& label_shape() const override { return spec_.label_shape; }
  DType label_dtype() const override { return spec_.label_dtype; }
  bool channels_stored_last() const override { return spec_.channels_last; }
  void read(int64_t i, float* x, void* y, ReadScratch& scratch, bool channels_last = false) const override;
  std::string describe(int64_t i) const override;

 private:
  Spec spec_;
  ReadFn read_;
};

}  // namespace halo::data
