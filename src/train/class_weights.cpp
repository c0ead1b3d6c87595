#include "halo/train/class_weights.hpp"

#include <cmath>
#include <string>

#include "halo/util/error.hpp"

namespace halo::train {

std::vector<double> class_weights_from_counts(const std::vector<double>& counts, double power) {
  HALO_CHECK_T(ConfigError, !counts.empty(), "class weights: no classes to weigh");
  double total = 0;
  for (size_t k = 0; k < counts.size(); ++k) {
    HALO_CHECK_T(ConfigError, counts[k] >= 0, "class weights: class ", k, " has a negative count ", counts[k]);
    total += counts[k];
  }
  std::vector<double> w(counts.size());
  for (size_t k = 0; k < counts.size(); ++k) {
    HALO_CHECK_T(ConfigError, counts[k] > 0, "class weights: class ", k,
                 " has no labelled pixels in the data counted, so its weight would be infinite; give the "
                 "weights explicitly (loss.class_weights: [w0, w1, ...]) or count more samples");
    w[k] = std::pow(counts[k] / total, power);
  }
  return w;
}

std::vector<double> count_label_pixels(const data::Dataset& dataset, const std::vector<int64_t>& indices,
                                       int classes, bool skip_bad_samples) {
  HALO_CHECK_T(ConfigError, dataset.label_dtype() == DType::i32, "counting label pixels needs class masks, but ",
               dataset.size() > 0 ? dataset.describe(0) : std::string("the data set"), " holds label vectors");
  std::vector<double> counts(size_t(classes), 0.0);
  std::vector<float> x(size_t(numel(dataset.sample_shape())));
  std::vector<int32_t> y(size_t(numel(dataset.label_shape())));
  data::ReadScratch scratch;
  for (int64_t i : indices) {
    // Reads the sample too: the datasets have no label-only read, and this runs once.
    try {
      dataset.read(i, x.data(), y.data(), scratch, dataset.channels_stored_last());
    } catch (const data::BadSampleError&) {
      if (!skip_bad_samples) throw;
      continue;  // the loader replaces it (and logs it) when training reaches it
    }
    for (int32_t v : y)
      if (v >= 0 && v < classes) counts[size_t(v)] += 1;
  }
  return counts;
}

std::vector<double> class_weights_from_labels(const dist::Communicator& comm, const data::Dataset& dataset,
                                              const std::vector<int64_t>& indices, int classes, double power,
                                              bool skip_bad_samples) {
  std::vector<double> counts = count_label_pixels(dataset, indices, classes, skip_bad_samples);
  comm.allreduce_sum(counts.data(), counts.size(), "class pixel counts");
  return class_weights_from_counts(counts, power);
}

}  // namespace halo::train
