// What halo-data inspect and verify compute: per-file descriptions with per-channel
// statistics after the layout's transform, and a full read of every sample with reasons.
#pragma once
#include <string>
#include <vector>

#include "halo/data/dataset.hpp"

namespace halo::data {

struct ChannelStats {
  double min = 0, max = 0, mean = 0, std = 0;  ///< std: population (ddof = 0)
};

struct FileReport {
  std::string file;
  Layout layout;
  int64_t samples = 0;
  Shape data_dims, label_dims;   ///< stored datasets, whole file
  std::string data_dtype, label_dtype;
  Shape sample_shape, label_shape;  ///< as delivered
  std::vector<ChannelStats> channels;   ///< per delivered channel, after the transform
  std::vector<double> class_fractions;  ///< masks: fraction of pixels of class 0..num_classes-1
  std::vector<ChannelStats> label_components;  ///< vectors: per component over samples
};

/// Reads every sample of `file` through `layout` (detect_layout when layout.format is empty).
FileReport inspect_file(const std::string& file, const Layout& layout);

struct BadSample {
  std::string file;
  int64_t sample = -1;  ///< -1: the file as a whole
  std::string reason;
};

/// The stored datasets of `file` (shapes and dtypes, no sample read); `layout` as for
/// inspect_file. The reference verify_file compares other files with.
FileReport describe_file(const std::string& file, const Layout& layout);

/// What is wrong with the stored shapes and dtypes of `r` for its format (e.g. CosmoFlow:
/// 4 channels, cubic volumes, integer counts, (4,) float targets; DeepCAM: float fields and
/// an integer (H, W) mask over the same grid) and, with a `reference`, where they differ
/// from it. Empty when nothing is. Custom layouts are checked against their axes only.
std::vector<std::string> shape_problems(const FileReport& r, const FileReport* reference = nullptr);

/// Checks the stored shapes and dtypes (shape_problems, against `reference` when given: the
/// first file of a set, so one 16^3 file among 128^3 ones is reported), then reads every
/// sample; reports unreadable files, failed reads, NaN/Inf values, negative counts before
/// log1p and mask labels outside 0..num_classes-1.
std::vector<BadSample> verify_file(const std::string& file, const Layout& layout,
                                   const FileReport* reference = nullptr);

}  // namespace halo::data
