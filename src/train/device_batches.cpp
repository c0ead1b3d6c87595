#include "halo/train/device_batches.hpp"

#include <memory>

#include "halo/cuda/runtime.hpp"
#include "halo/util/error.hpp"

namespace halo::train {

namespace {

struct Slot {
  DeviceBatch batch;
  std::unique_ptr<cuda::Event> copied;  // recorded on the copy stream after the batch's copies
  bool filled = false;
};

}  // namespace

struct DeviceBatchQueue::Impl {
  data::DataLoader& loader;
  Device device;
  cuda::Stream copy_stream;
  Slot slots[2];
  int current = 0;
  bool started = false;

  Impl(data::DataLoader& l, Device d) : loader(l), device(d), copy_stream(d.index) {
    for (auto& s : slots) s.copied = std::make_unique<cuda::Event>(device.index);
  }

  ~Impl() {
    try {
      copy_stream.synchronize();
    } catch (const Error&) {
      // A failed device cannot finish the copy either; the error surfaces at the next call.
    }
  }

  // Takes the loader's next batch and queues its copy into `s` on the copy stream.
  void fill(Slot& s) {
    // The previous occupant's tensors are released here, with the compute stream current,
    // so the allocator orders their reuse after the compute work that may still read them.
    s.batch = DeviceBatch{};
    s.filled = false;
    const data::Batch* b = loader.next();
    if (!b) return;
    {
      cuda::StreamGuard on_copy(copy_stream);
      s.batch.x = Tensor::empty_strided(b->x.shape(), b->x.strides(), b->x.dtype(), device);
      s.batch.y = Tensor::empty_strided(b->y.shape(), b->y.strides(), b->y.dtype(), device);
      cuda::copy_async(s.batch.x, b->x, copy_stream);
      cuda::copy_async(s.batch.y, b->y, copy_stream);
    }
    s.copied->record(copy_stream.handle());
    s.batch.size = b->size;
    s.filled = true;
  }

  const DeviceBatch* next() {
    if (!started) {
      fill(slots[current]);
      started = true;
    }
    Slot& now = slots[current];
    if (!now.filled) return nullptr;
    // The loader reuses this batch's host buffer at its next next(), so its copy must be done.
    now.copied->synchronize();
    // Orders the step after the copy on the device too, whatever the host did.
    now.copied->block(cuda::current_stream(device.index));
    current = 1 - current;
    fill(slots[current]);  // runs on the copy engine while the step on `now` computes
    return &now.batch;
  }
};

DeviceBatchQueue::DeviceBatchQueue(data::DataLoader& loader, Device device) {
  HALO_CHECK_T(ConfigError, device.is_cuda(), "DeviceBatchQueue: ", device.str(), " is not a GPU");
  impl_ = std::make_unique<Impl>(loader, device);
}

const DeviceBatch* DeviceBatchQueue::next() { return impl_->next(); }

DeviceBatchQueue::~DeviceBatchQueue() = default;

}  // namespace halo::train
