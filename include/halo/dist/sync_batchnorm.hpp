// Synchronised BatchNorm: the statistics of a batch split over ranks must be summed over
// the ranks that share it. A BatchNorm layer takes a StatsReducer (the same signature as
// halo::ops::StatsReducer) that sum-allreduces its per-channel sums in place.
#pragma once
#include <functional>

#include "halo/dist/communicator.hpp"

namespace halo::dist {

using StatsReducer = std::function<void(double* values, size_t n)>;

/// A reducer over the whole communicator (group_size 0 or comm.size()) or over groups of
/// `group_size` consecutive ranks (ranks r with the same r / group_size; the last group is
/// smaller when size is not a multiple). Creating it is collective over `comm`.
StatsReducer make_stats_reducer(const Communicator& comm, int group_size = 0);

}  // namespace halo::dist
