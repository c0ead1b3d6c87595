// Class weights for a weighted cross-entropy on unbalanced segmentation data (DeepCAM:
// ~98.6% background, ~0.05% tropical cyclones, ~1.3% atmospheric rivers).
//
// MLPerf HPC DeepCAM weighs class k by f_k^-0.125, where f_k is the class's fraction of all
// labelled pixels (the fractions sum to 1; the weights are not rescaled afterwards). Its
// published fractions 0.98627 / 0.000458 / 0.01327 give the weights 1.0017 / 2.6146 / 1.7164.
// The small power keeps rare classes noticeable without letting a handful of cyclone pixels
// dominate the gradient.
#pragma once
#include <cstdint>
#include <vector>

#include "halo/data/source.hpp"
#include "halo/dist/communicator.hpp"

namespace halo::train {

/// Weights fraction_k^power from per-class pixel counts (or fractions: only the ratios
/// matter). Throws ConfigError naming the class when a class has no pixels (its weight
/// would be infinite), or when a count is negative.
std::vector<double> class_weights_from_counts(const std::vector<double>& counts, double power = -0.125);

/// Pixels of each class 0..classes-1 in the labels of samples `indices` of `dataset`
/// (integer masks); pixels with other values are not counted. A sample that fails the
/// loader's value checks (data::BadSampleError) stops the count unless `skip_bad_samples`
/// (the loader's BadSamplePolicy::skip), which leaves it out as training will.
std::vector<double> count_label_pixels(const data::Dataset& dataset, const std::vector<int64_t>& indices,
                                       int classes, bool skip_bad_samples = false);

/// Every rank counts the labels of `indices` (its shard), the counts are summed over `comm`,
/// and the weights come from the global counts: identical on every rank. Collective.
std::vector<double> class_weights_from_labels(const dist::Communicator& comm, const data::Dataset& dataset,
                                              const std::vector<int64_t>& indices, int classes,
                                              double power = -0.125, bool skip_bad_samples = false);

}  // namespace halo::train
