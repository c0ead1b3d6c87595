// Data-parallel gradient synchroniser. Each rank trains a replica on its shard of the
// batch; gradients are averaged over ranks with allreduce, hidden behind backward:
//
//   GradientSynchronizer sync(comm, model.parameters());
//   sync.attach(model);                  // listens to the model's grad-ready events
//   model.zero_grad(); model.forward(x); model.backward(dy);   // buckets go out meanwhile
//   if (sync.wait()) optimizer.step();   // true once the averaged gradients are in place
//
// Parameters are grouped into buckets in reverse definition order (the order backward
// completes them): a small first bucket so communication starts early, then buckets of
// `bucket_bytes`. The layout depends only on names, shapes and dtypes, so it is the same on
// every rank (check it with layout_hash). A bucket is launched (MPI_Iallreduce) as soon as
// all its gradients are ready, always in bucket order so that every rank posts the same
// collectives in the same order. A progress thread drives MPI while backward computes;
// without MPI_THREAD_MULTIPLE the synchroniser tests its requests at every mark_ready.
//
// Parameters on a GPU take the device path instead (needs NCCL, see nccl.hpp): the same
// buckets, packed on the GPU and reduced with ncclAllReduce on a communication stream that
// waits on an event recorded on the compute stream when backward completed the bucket;
// wait() makes the caller's stream wait for the last bucket before the optimizer runs.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "halo/dist/communicator.hpp"
#include "halo/nn/parameter.hpp"

namespace halo::nn {
class Model;
}

namespace halo::dist {

class NcclCommunicator;

struct GradSyncOptions {
  size_t bucket_bytes = size_t(25) << 20;        ///< cap of every bucket after the first
  size_t first_bucket_bytes = size_t(1) << 20;   ///< small, so the first allreduce starts early
  /// Sends f32 gradients as bf16 (half the bytes; sums rounded to bf16 at every step of
  /// the reduction, relative error about 2^-8 per addition).
  bool compress_bf16 = false;
  /// Gradients accumulate over this many micro-batches (backward passes) with no
  /// communication; the last one allreduces. The result is averaged over ranks and
  /// micro-batches, i.e. equal to one batch of size*accumulation_steps micro-batches.
  int accumulation_steps = 1;
  /// Divide the sum by size*accumulation_steps (true) or keep the sum.
  bool average = true;
  /// Progress thread when MPI_THREAD_MULTIPLE is available (else inline tests).
  bool progress_thread = true;
  /// Sleep of the progress thread between MPI_Test calls while requests are in flight and
  /// backward is computing; 0 spins (fastest transfers, but takes a core from backward).
  /// While the caller blocks in wait() the thread always spins.
  double poll_interval_us = 20.0;
  /// Device path only: the NCCL communicator to reduce over. Null: one is created from the
  /// Communicator on the parameters' GPU (collective). Share one between synchronisers.
  std::shared_ptr<NcclCommunicator> nccl;
};

struct BucketInfo {
  int index = 0;
  std::vector<std::string> params;  ///< in the order they are packed
  size_t elements = 0;
  size_t bytes = 0;                 ///< gradient bytes (before compression)
  std::string describe() const;     ///< "bucket 0 (3 params, 1.2 MB: fc3/bias .. fc2/weight)"
};

/// Times (halo::now_seconds) of one bucket in the last step: every gradient ready,
/// allreduce posted, allreduce complete and averaged gradients written back.
struct BucketTimes {
  double ready = 0, start = 0, end = 0;
};

class GradientSynchronizer {
 public:
  /// `params` in definition order (Model::parameters()); the same on every rank.
  GradientSynchronizer(Communicator comm, std::vector<nn::Parameter*> params, GradSyncOptions options = {});
  ~GradientSynchronizer();
  GradientSynchronizer(const GradientSynchronizer&) = delete;
  GradientSynchronizer& operator=(const GradientSynchronizer&) = delete;

  /// Registers a grad-ready hook on the model (detached on destruction).
  void attach(nn::Model& model);
  void detach();

  /// These parameters' gradients are complete for this backward pass.
  void mark_ready(const std::vector<nn::Parameter*>& params);
  /// Ends a backward pass: launches what was not marked (parameters that got no gradient)
  /// and, on a communicating micro-batch, waits for every bucket. Returns true when the
  /// averaged gradients are in place (step the optimizer), false on a micro-batch that
  /// only accumulates.
  bool wait();
  /// Blocks the host until the work queued so far on the calling thread's current stream is
  /// done, watched as wait() watches the allreduces (NCCL errors and the stall timeout become
  /// a DistError instead of a hang): for a replayed CUDA graph that holds this synchroniser's
  /// allreduces (wait() inside a capture records them without waiting). Returns at once on
  /// the CPU path.
  void watch_current_stream(const std::string& what);
  /// Whether the current backward pass is the one that communicates.
  bool communicates_now() const;

  const std::vector<BucketInfo>& buckets() const;
  /// Times of the last communicating step, per bucket.
  std::vector<BucketTimes> last_times() const;
  /// Hash of the bucket layout (names, sizes, order); equal on every rank.
  uint64_t layout_hash() const;
  bool uses_progress_thread() const;
  /// True when the parameters are on a GPU and gradients go through NCCL.
  bool on_device() const;
  const Communicator& communicator() const;

 private:
  // The buckets, the progress thread and its locks, the MPI reduction operator and the
  // device path live in src/dist/grad_sync.cpp: users see none of them.
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace halo::dist
