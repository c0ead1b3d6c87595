#include "halo/train/device_batches.hpp"

#include "halo/config.hpp"
#include "halo/util/error.hpp"

#if HALO_ENABLE_CUDA
#include <cuda_runtime.h>

#include "cuda/check.hpp"
#include "halo/cuda/runtime.hpp"
#endif

namespace halo::train {

#if HALO_ENABLE_CUDA

namespace {

struct Slot {
  DeviceBatch batch;
  cudaEvent_t copied = nullptr;  // recorded on the copy stream after the batch's copies
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
    cuda::DeviceGuard g(device.index);
    for (auto& s : slots) HALO_CUDA_CHECK(cudaEventCreateWithFlags(&s.copied, cudaEventDisableTiming));
  }

  ~Impl() {
    cuda::DeviceGuard g(device.index);
    cudaStreamSynchronize(static_cast<cudaStream_t>(copy_stream.handle()));
    for (auto& s : slots) cudaEventDestroy(s.copied);
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
    cuda::DeviceGuard g(device.index);
    HALO_CUDA_CHECK(cudaEventRecord(s.copied, static_cast<cudaStream_t>(copy_stream.handle())));
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
    {
      cuda::DeviceGuard g(device.index);
      // The loader reuses this batch's host buffer at its next next(), so its copy must be done.
      HALO_CUDA_CHECK(cudaEventSynchronize(now.copied));
      // Orders the step after the copy on the device too, whatever the host did.
      HALO_CUDA_CHECK(cudaStreamWaitEvent(static_cast<cudaStream_t>(cuda::current_stream(device.index)), now.copied, 0));
    }
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

#else  // !HALO_ENABLE_CUDA

struct DeviceBatchQueue::Impl {};

DeviceBatchQueue::DeviceBatchQueue(data::DataLoader&, Device device) {
  throw ConfigError(str("batches on ", device.str(), ": this build of Halo has no CUDA (configure with "
                        "-DHALO_ENABLE_CUDA=ON)"));
}

const DeviceBatch* DeviceBatchQueue::next() { return nullptr; }

#endif

DeviceBatchQueue::~DeviceBatchQueue() = default;

}  // namespace halo::train
