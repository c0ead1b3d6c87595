// The device path of GradientSynchronizer (internal): buckets of GPU gradients reduced with
// NCCL on the communication stream, ordered against compute with events.
//
// For each bucket, when backward has announced all its gradients, launch() records an event
// on the announcing thread's current stream (where backward queued the kernels that wrote
// them) and queues on the communication stream: a wait for that event, the packing of the
// gradients into a flat wire buffer (as bf16 when compressed), ncclAllReduce (sum), and the
// scaled copy back into the gradients, then a completion event. Nothing blocks the host, so
// backward keeps queueing work while earlier buckets are on the wire. finish() watches the
// completion events (NcclCommunicator::wait_event: async errors, stall timeout) and makes
// the caller's stream wait for the last one, so the optimizer's kernels queued after it
// read averaged gradients.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "halo/dist/nccl.hpp"
#include "halo/nn/parameter.hpp"

namespace halo::dist::detail {

struct DeviceBucket {
  std::vector<nn::Parameter*> params;  ///< packing order
  std::vector<size_t> offsets;         ///< element offset of each parameter
  size_t elements = 0;
  DType dtype = DType::f32;            ///< of the gradients (f32 or f64)
  bool compressed = false;             ///< bf16 on the wire (f32 only)
  std::string what;                    ///< "gradient allreduce bucket 2 (...)" for reports
};

class DeviceGradSync {
 public:
  DeviceGradSync(std::shared_ptr<NcclCommunicator> nccl, int device, std::vector<DeviceBucket> buckets);
  ~DeviceGradSync();
  DeviceGradSync(const DeviceGradSync&) = delete;
  DeviceGradSync& operator=(const DeviceGradSync&) = delete;

  /// Queues bucket `b` (see above); the gradients are multiplied by `scale` on the way back.
  void launch(int b, double scale);
  /// Waits, watched, for buckets [0, count) in order, calling on_done(b) as each completes;
  /// then the calling thread's current stream waits for the last.
  /// Inside a CUDA graph capture it only makes the stream wait (the host waits at replays:
  /// watch_current_stream).
  void finish(int count, const std::function<void(int)>& on_done);
  /// Blocks the host, watched as finish() is, until the calling thread's current stream has
  /// done the work queued on it so far (a replayed graph holding the allreduces).
  void watch_current_stream(const std::string& what);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace halo::dist::detail
