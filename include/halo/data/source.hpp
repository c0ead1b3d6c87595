// Dataset: the interface every data source implements, so the DataLoader (sharding,
// padding, prefetch, staging, bad-sample replacement) and the Trainer work on any of them:
// HDF5 files (H5Dataset, dataset.hpp, packed shards included), arrays in memory and user
// callbacks (ArrayDataset, CallbackDataset, memory.hpp), Kokkos views (interop/kokkos.hpp).
//
// A sample is delivered as float32 (C, spatial...) and its label as float32 (L) (regression
// targets) or int32 (spatial...) (class maps). A source may store samples channels-last
// (spatial..., C); it says so through channels_stored_last(), and the loader then asks for
// that order so that no transpose is needed unless the user sets a memory format.
//
// Spatial parallelism splits one sample's volume across ranks: read_block() delivers only a
// box of the spatial axes (SpatialBlock), and a source that can (H5Dataset: a hyperslab)
// reads only that box from storage.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "halo/tensor/dtype.hpp"
#include "halo/tensor/shape.hpp"
#include "halo/util/error.hpp"

namespace halo::data {

/// A sample that was read but cannot be trained on: NaN or infinite values, negative counts
/// before a log1p, NaN or infinite target vectors. Distinct from a failed read so the
/// loader can skip it (LoaderOptions::on_bad_sample); what() names the sample's origin (for
/// HDF5: file, dataset and sample).
class BadSampleError : public IOError {
 public:
  BadSampleError(std::string file, std::string dataset, int64_t sample, std::string reason)
      : IOError(str("file ", file, ", dataset '", dataset, "', sample ", sample, ": ", reason)),
        file_(std::move(file)), dataset_(std::move(dataset)), sample_(sample), reason_(std::move(reason)) {}
  /// For sources without files: `where` is Dataset::describe(sample).
  BadSampleError(std::string where, int64_t sample, std::string reason)
      : IOError(str(where, ": ", reason)), file_(std::move(where)), sample_(sample), reason_(std::move(reason)) {}
  /// The file, or the source's description of the sample when it has no file.
  const std::string& file() const { return file_; }
  const std::string& dataset() const { return dataset_; }  ///< HDF5 dataset; empty for other sources
  int64_t sample() const { return sample_; }  ///< index in the Dataset
  const std::string& reason() const { return reason_; }

 private:
  std::string file_, dataset_;
  int64_t sample_;
  std::string reason_;
};

/// Per-thread scratch a source may use while reading (stored values before conversion).
/// The loader keeps one per reader thread, so read() needs no allocation in steady state.
struct ReadScratch {
  std::vector<unsigned char> raw;
  /// The default Dataset::read_block reads the whole sample and label here before cropping
  /// (raw stays free for the read() it calls).
  std::vector<float> sample;
  std::vector<unsigned char> label;
};

/// A box over a sample's spatial axes, [begin, end) per axis, in the order the sample's
/// spatial axes are delivered (D, H, W for 3D samples). Samples with k < 3 spatial axes use
/// the first k entries only; the others are ignored.
struct SpatialBlock {
  std::array<int64_t, 3> begin{0, 0, 0}, end{0, 0, 0};

  int64_t extent(size_t axis) const { return end.at(axis) - begin.at(axis); }
  /// Voxels in the block over the first `spatial_axes` axes.
  int64_t numel(size_t spatial_axes = 3) const;
  /// "[0:64, 0:128, 0:128]" (the first `spatial_axes` axes).
  std::string str(size_t spatial_axes = 3) const;
  /// The whole spatial extent of a (C, spatial...) sample (at most 3 spatial axes).
  static SpatialBlock whole(const Shape& sample_shape);
  /// True when the block is a non-empty box inside the spatial extent of a (C, spatial...)
  /// sample with 1 to 3 spatial axes.
  bool fits(const Shape& sample_shape) const;
  bool operator==(const SpatialBlock& o) const { return begin == o.begin && end == o.end; }
  bool operator!=(const SpatialBlock& o) const { return !(*this == o); }
};

/// Throws ShapeError, prefixed by `where`, unless `b` is a non-empty box inside the spatial
/// extent of a (C, spatial...) sample with 1 to 3 spatial axes; the message names the block
/// and the sample shape.
void check_block(const SpatialBlock& b, const Shape& sample_shape, const std::string& where = "");

class Dataset {
 public:
  virtual ~Dataset() = default;

  virtual int64_t size() const = 0;
  /// Delivered sample: (C, spatial...) float32.
  virtual const Shape& sample_shape() const = 0;
  /// Delivered label: (L,) float32 for vectors, (spatial...) int32 for class maps.
  virtual const Shape& label_shape() const = 0;
  virtual DType label_dtype() const = 0;
  /// True when the source holds samples channels-last (spatial..., C): delivering them in
  /// that order costs no transpose, so the loader picks it unless told otherwise.
  virtual bool channels_stored_last() const { return false; }

  /// Reads sample i: `x` gets numel(sample_shape()) floats in (C, spatial...) order, or in
  /// (spatial..., C) order with `channels_last`; `y` gets the label (float or int32). Called
  /// concurrently from the loader's reader threads with a scratch per thread: it must be
  /// thread-safe. A sample that is read but unusable throws BadSampleError.
  virtual void read(int64_t i, float* x, void* y, ReadScratch& scratch, bool channels_last = false) const = 0;

  /// Reads block `b` of sample i: `x` gets numel(block_shape(b)) floats in (C, block...)
  /// order, or (block..., C) with `channels_last`; `y` gets the label, cropped to the block
  /// when it is a class map (label_is_map()), else whole. A block outside the sample or
  /// empty throws ShapeError. Same threading and value checks as read(), over the block.
  /// This default reads the whole sample (into scratch) and crops it: correct for any
  /// source, economical for none; H5Dataset reads only the block's hyperslab.
  virtual void read_block(int64_t i, const SpatialBlock& b, float* x, void* y, ReadScratch& scratch,
                          bool channels_last = false) const;
  /// True when the label is an int32 class map over the sample's spatial grid (it then
  /// follows a block); float label vectors are delivered whole.
  bool label_is_map() const;
  /// Delivered shapes of block `b`: (C, extents...) and the label's (cropped when a map).
  /// Both throw ShapeError for a bad block.
  Shape block_shape(const SpatialBlock& b) const;
  Shape block_label_shape(const SpatialBlock& b) const;

  /// Where sample i comes from, for error messages ("file a.h5, row 3", "array 'fields', sample 7").
  virtual std::string describe(int64_t i) const { return str("sample ", i); }

  /// Bytes one sample takes in storage (for the loader's read statistics).
  virtual size_t stored_bytes() const { return size_t(numel(sample_shape())) * sizeof(float); }
  size_t label_bytes() const { return size_t(numel(label_shape())) * 4; }
  /// The share of stored_bytes() and label_bytes() that block `b` stands for.
  size_t block_stored_bytes(const SpatialBlock& b) const;
  size_t block_label_bytes(const SpatialBlock& b) const { return size_t(numel(block_label_shape(b))) * 4; }
  /// Releases what the source keeps open between reads (files); reopened on demand.
  virtual void close_files() const {}
};

/// The value checks any in-memory source can apply: `x` (n floats) and a float label must be
/// finite. Throws BadSampleError naming ds.describe(i) and the first bad position.
void check_sample_values(const Dataset& ds, int64_t i, const float* x, const void* y);

/// Reorders one sample between (C, S) and (S, C) with S the product of the spatial extents:
/// `to_channels_last` picks the direction.
void reorder_channels(const float* in, float* out, int64_t channels, int64_t spatial, bool to_channels_last);

}  // namespace halo::data
