// H5Dataset: a list of HDF5 files read through a Layout, as an indexed set of samples.
//
// Implements data::Dataset (source.hpp). Sample i is (file, index in file, sub-volume
// origin). Only the hyperslab of sample i is ever read: one cube of a raw universe, one row
// of a packed shard, and with read_block() only a block of it (spatial parallelism). Reads
// check the stored shape against the first file's and every error names the file and the
// dataset. The HDF5 handles stay in the source file (OpenFile).
//
// What the constructor learns from the files (the first file's shapes and element type, the
// samples of every packed shard, the minmax statistics) is the dataset's index(). One rank
// can open the files and hand its index to the others, which then build the same dataset
// without touching a file until they read a sample (dist::open_dataset_on_root).
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "halo/data/format.hpp"
#include "halo/data/source.hpp"
#include "halo/tensor/dtype.hpp"
#include "halo/tensor/shape.hpp"
#include "halo/util/error.hpp"

namespace halo::data {

struct SampleRef {
  int32_t file = 0;
  int64_t index = 0;                    ///< row in a packed file, else 0
  std::array<int64_t, 3> origin{0, 0, 0};  ///< sub-volume origin (first spatial axes), else 0
};

class H5Dataset : public Dataset {
 public:
  /// Opens the first file (and every packed shard, and the minmax statistics) to build the index.
  H5Dataset(std::vector<std::string> files, Layout layout, Driver driver = Driver::automatic);
  /// The same dataset from another one's index() over the same files and layout: opens no file.
  H5Dataset(std::vector<std::string> files, Layout layout, const std::string& index,
            Driver driver = Driver::automatic);
  ~H5Dataset();
  H5Dataset(const H5Dataset&) = delete;
  H5Dataset& operator=(const H5Dataset&) = delete;

  int64_t size() const override { return int64_t(samples_.size()); }
  const Layout& layout() const { return layout_; }
  const std::vector<std::string>& files() const { return files_; }
  const SampleRef& ref(int64_t i) const { return samples_.at(size_t(i)); }
  /// What the constructor read from the files, as a string for the constructor above.
  std::string index() const;

  /// Delivered sample: (C, spatial...) float32.
  const Shape& sample_shape() const override { return sample_shape_; }
  /// True when the stored axes end with the channel axis (DHWC, HWC): channels-last is
  /// then the order in which samples can be delivered without a transpose.
  bool channels_stored_last() const override {
    return channel_axis_ >= 0 && channel_axis_ == int(stored_shape_.size()) - 1 && stored_shape_.size() > 1;
  }
  /// Delivered label: (L,) float32 for vectors, (spatial...) int32 for masks.
  const Shape& label_shape() const override { return label_shape_; }
  DType label_dtype() const override { return layout_.label_kind == LabelKind::mask ? DType::i32 : DType::f32; }
  /// Stored sample (one row / one cube, stored axis order) and its element type.
  const Shape& stored_shape() const { return stored_shape_; }
  RawType stored_type() const { return stored_type_; }
  size_t stored_bytes() const override { return size_t(numel(stored_shape_)) * raw_size(stored_type_); }
  Driver driver() const { return driver_; }
  /// Per-channel min and max used by Transform::minmax (empty otherwise).
  const std::vector<float>& norm_min() const { return min_; }
  const std::vector<float>& norm_max() const { return max_; }

  /// Reads sample i: `x` gets numel(sample_shape()) floats, `y` the label (float or int32).
  /// The floats are in the logical (C, spatial...) order, or with `channels_last` in
  /// (spatial..., C) order — the stored order of DHWC / HWC files, so no transpose is needed.
  /// With check_values() (the default) the stored values are checked while they are still
  /// in cache (finite floats, counts >= 0 before log1p, finite target vectors); a bad
  /// sample throws BadSampleError after the whole sample was read.
  void read(int64_t i, float* x, void* y, ReadScratch& scratch, bool channels_last = false) const override;
  /// Reads block `b` of sample i (source.hpp) with one hyperslab per slab of the block:
  /// nothing outside the block (relative to the cube for sub-volumes, to the row for packed
  /// shards) is read, transformed or checked; a class-map label is read as the same block.
  /// read() is this with the whole sample. Errors name the file, the dataset and the block.
  void read_block(int64_t i, const SpatialBlock& b, float* x, void* y, ReadScratch& scratch,
                  bool channels_last = false) const override;
  /// "file a.h5", with ", row 3" in packed shards and ", cube at 0,64,0" for sub-volumes.
  std::string describe(int64_t i) const override;
  /// Reads the stored values of sample i untransformed (stored_bytes()) and its label.
  void read_raw(int64_t i, void* raw, void* y) const;
  /// Applies the layout's transform and axis order to stored values. `rows` > 0 limits it
  /// to that many entries of the first stored axis (a slab; only when the delivered order
  /// is the stored order and the first axis is not the channel axis).
  void transform(const void* raw, float* x, bool channels_last = false, int64_t rows = 0) const;

  /// Turns the value checks of read() off (halo-data inspect reports statistics of bad
  /// files instead of stopping at them). Call before sharing the dataset between threads.
  void set_check_values(bool on) { check_values_ = on; }
  bool check_values() const { return check_values_; }

  /// Closes cached file handles (they are reopened on demand).
  void close_files() const override;

 private:
  struct OpenFile;
  struct Index;
  Index read_index() const;     // opens the files
  void setup(Index index);      // derives shapes and samples from the index, opens nothing
  std::string stats_path() const;
  OpenFile& open(int32_t file) const;  // with hdf5_mutex() held
  // A box over the stored axes of one sample, relative to the sample (its cube, its row):
  // [start, start + count) per stored axis.
  struct Box {
    Shape start, count;
  };
  Box whole_box() const;
  Box block_box(const SpatialBlock& b) const;  // the channel axis whole
  // The one read path of read() and read_block(): `block` is null for the whole sample.
  void read_box(int64_t i, const Box& box, const SpatialBlock* block, float* x, void* y, ReadScratch& scratch,
                bool channels_last) const;
  // Reads the stored values of `box` of sample i into `raw` (dense, stored axis order), and
  // the label into `y` unless null (a map cropped to `block` unless null); `last` closes a
  // one-sample file.
  void read_stored(int64_t i, const Box& box, const SpatialBlock* block, void* raw, void* y, bool last) const;
  void read_label(int64_t i, const SpatialBlock* block, void* y) const;
  // Applies the transform and axis order to dense stored values of shape `stored`.
  void transform_box(const void* raw, float* x, const Shape& stored, bool channels_last) const;
  std::string block_note(const SpatialBlock* block) const;  // "" or ", block [0:43, 0:8, 0:8]"
  std::string where(int32_t file, const std::string& dset) const;

  std::vector<std::string> files_;
  Layout layout_;
  Driver driver_;
  std::vector<SampleRef> samples_;
  Shape stored_shape_;       // one sample, stored axes
  Shape file_data_dims_;     // `data` dims of the first file (packed: N first)
  Shape stored_label_shape_;  // one label, stored
  Shape sample_shape_, label_shape_;
  RawType stored_type_ = RawType::f32;
  std::vector<float> min_, max_;
  std::vector<int64_t> rows_;  // packed: samples of each file (the index's), else empty
  int channel_axis_ = -1;  // in stored axes, -1: none
  bool check_values_ = true;
  mutable std::map<int32_t, std::unique_ptr<OpenFile>> open_;
  mutable std::vector<int32_t> open_order_;
};

}  // namespace halo::data
