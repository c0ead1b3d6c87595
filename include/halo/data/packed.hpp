// Halo packed shards: many samples per file so a parallel file system sees few files.
//
// Datasets (N samples): `data` (N, sample...) in the source's stored dtype and axis order,
// chunked one sample per chunk; `label` (N, label...) float32 or int32; `origin/files`
// (F,) strings and `origin/position` (N, 5) int64 = (file index, row in that file, origin
// of the sub-volume along the first three spatial axes). Root attributes: halo_format =
// "packed", axes, transform, label_kind, source_format; minmax shards also hold
// `norm/minval` and `norm/maxval`.
#pragma once
#include <array>
#include <memory>
#include <string>
#include <vector>

#include "halo/data/dataset.hpp"

namespace halo::data {

struct PackedDescription {
  std::string axes;
  Transform transform = Transform::none;
  LabelKind label_kind = LabelKind::vector;
  std::string source_format;
  std::vector<float> norm_min, norm_max;
  std::vector<std::string> origin_files;
};

class PackedWriter {
 public:
  PackedWriter(const std::string& path, int64_t n, const Shape& sample, RawType type, const Shape& label,
               const PackedDescription& desc);
  ~PackedWriter();
  /// Writes row `row` (0 <= row < n).
  void write(int64_t row, const void* sample, const void* label, const std::array<int64_t, 5>& origin);
  void close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Packs samples `which` of `ds` (stored values, untransformed) into shards of at most
/// `per_shard` samples named <out_dir>/<prefix>-00000.h5, ...; returns their paths.
std::vector<std::string> pack(const H5Dataset& ds, const std::string& out_dir, int64_t per_shard,
                              const std::string& prefix = "shard", std::vector<int64_t> which = {});

}  // namespace halo::data
