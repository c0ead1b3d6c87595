// The training step `halo-scaling run` times: a CosmoFlow- or DeepCAM-style model on
// synthetic in-memory batches, its gradients averaged by a GradientSynchronizer on the
// model's grad-ready hooks, as the Trainer does, with every phase timed separately.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "halo/dist/communicator.hpp"
#include "halo/dist/spatial_grid.hpp"
#include "halo/train/trace.hpp"

namespace halo::scaling {

struct WorkloadOptions {
  std::string name = "cosmoflow";
  int64_t size = 32;             ///< CosmoFlow: edge of the cubic input (128 in MLPerf)
  int64_t height = 96, width = 144;  ///< DeepCAM: input size (768 x 1152 in MLPerf)
  double channel_scale = 0.25;   ///< DeepCAM: channel multiplier (1 in MLPerf)
  int middle_blocks = 2;         ///< DeepCAM: middle-flow blocks (16 in MLPerf)
  /// CosmoFlow: every sample split over a D x H x W grid of ranks (spatial parallelism);
  /// a configuration of p ranks then runs p / (D*H*W) replicas.
  std::array<int, 3> spatial{1, 1, 1};
  int spatial_ranks() const { return spatial[0] * spatial[1] * spatial[2]; }
};

/// The per-rank batch when none is given: the MLPerf reference's local batch at full size.
int64_t default_batch(const WorkloadOptions& w);

/// Phase times of this rank's timed steps (seconds), and the gradient buckets of the last
/// step relative to the start of its backward pass.
struct StepTimes {
  std::vector<double> step, forward, backward, exposed_comm, optimizer, data;
  struct Bucket {
    double bytes = 0, ready = 0, start = 0, end = 0;
  };
  std::vector<std::vector<Bucket>> buckets;  ///< per timed step
  /// {"forward_s":..,"backward_s":..,"exposed_comm_s":..,"data_s":..,"optimizer_s":..}: medians
  std::string split_json() const;
  /// What `halo-scaling project` extrapolates from: the split and the bucket schedule
  /// (median ready time of each bucket), see docs/scaling.md.
  std::string profile_json(int64_t batch) const;
};

/// Builds the workload on `comm` (same initial parameters on every rank), runs `warmup`
/// untimed and `steps` timed training steps of `batch` samples per rank (per replica with
/// w.spatial: each rank of a grid holds its block of the replica's samples, and gradients
/// are averaged over the replicas).
/// With `trace`, the timed steps are recorded there (layers, buckets, loss, optimizer).
StepTimes measure(const WorkloadOptions& w, const dist::Communicator& comm, int64_t batch, int warmup, int steps,
                  train::TraceRecorder* trace = nullptr);

}  // namespace halo::scaling
