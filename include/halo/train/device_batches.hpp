// Batches for a model on a GPU, copied ahead: while the step on batch k runs on the compute
// stream, batch k+1 is copied from the loader's (pinned) host buffers to the device on a
// separate copy stream with cudaMemcpyAsync. An event recorded after each copy orders it
// before the step that reads it; the host waits on that event only before it hands the
// batch's host buffer back to the loader (whose buffer stays valid until the following
// next()), by which time the copy has normally long finished.
//
// The trainer uses one per epoch when TrainerOptions::device is a GPU; a loop of your own can
// too:
//
//   train::DeviceBatchQueue q(loader, Device::cuda(0));   // after loader.start_epoch(e)
//   while (const train::DeviceBatch* b = q.next()) step(b->x, b->y);
//
// The loader should have LoaderOptions::pin_memory set: from pageable memory the copies
// still come out right but do not overlap compute.
#pragma once
#include <cstdint>
#include <memory>

#include "halo/data/loader.hpp"
#include "halo/tensor/device.hpp"
#include "halo/tensor/tensor.hpp"

namespace halo::train {

struct DeviceBatch {
  Tensor x, y;
  int64_t size = 0;
};

class DeviceBatchQueue {
 public:
  /// Reads from `loader` from its current position (after start_epoch and any skipped
  /// batches). Throws in a build without CUDA.
  DeviceBatchQueue(data::DataLoader& loader, Device device);
  ~DeviceBatchQueue();  // waits for a copy still in flight (the loader's buffer it reads)
  DeviceBatchQueue(const DeviceBatchQueue&) = delete;
  DeviceBatchQueue& operator=(const DeviceBatchQueue&) = delete;

  /// The next batch on the device, ordered before work then queued on the calling thread's
  /// current stream; null at the end of the epoch. Valid until the next call.
  const DeviceBatch* next();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace halo::train
