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

/// Reads every sample; reports unreadable files, failed reads, NaN/Inf values and mask
/// labels outside 0..num_classes-1.
std::vector<BadSample> verify_file(const std::string& file, const Layout& layout);

}  // namespace halo::data
