// The CUDA device backend of the tensor core: a stream-ordered caching allocator per GPU,
// a caching pinned-host allocator, and copies. Registered lazily: the first time the tensor
// core asks for the cuda backend (allocator.cpp calls register_backend()), so a program
// linked with a CUDA build runs unchanged on a machine without a GPU until it asks for one.
#include <cuda_runtime.h>

#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "cuda/check.hpp"
#include "cuda/graph_capture.hpp"
#include "cuda/tensor_ops.hpp"
#include "halo/cuda/runtime.hpp"
#include "halo/tensor/allocator.hpp"
#include "halo/tensor/graph_pool.hpp"

namespace halo::cuda {

namespace {

[[noreturn]] void throw_no_gpu(int index) {
  throw Error(str("cuda:", index, " requested but ", device_count(),
                  " CUDA GPU(s) are visible to this process: check the node has a GPU, the driver "
                  "is loaded and CUDA_VISIBLE_DEVICES, or run on Device::cpu()"));
}

// A cached block remembers the stream it was freed on and an event recorded there at the
// free: handing it to work on that stream needs nothing, to work on another stream a
// device-side wait for the event (no host synchronisation).
struct CachedBlock {
  void* ptr;
  cudaStream_t stream;
  cudaEvent_t freed;
  uint64_t generation;  // the allocator's capture generation at the free (see take_for_capture)
};

// cudaMalloc is "potentially unsafe" during a stream capture, which the capturing thread may
// call only in relaxed mode: this scope switches the thread to it (and back).
class RelaxedCaptureMode {
 public:
  explicit RelaxedCaptureMode(bool on) : on_(on) {
    if (on_) cudaThreadExchangeStreamCaptureMode(&mode_);
  }
  ~RelaxedCaptureMode() {
    if (on_) cudaThreadExchangeStreamCaptureMode(&mode_);
  }
  RelaxedCaptureMode(const RelaxedCaptureMode&) = delete;
  RelaxedCaptureMode& operator=(const RelaxedCaptureMode&) = delete;

 private:
  bool on_;
  cudaStreamCaptureMode mode_ = cudaStreamCaptureModeRelaxed;
};

// Sets the calling thread's device for a scope without ever throwing (destructors, teardown).
class QuietDeviceGuard {
 public:
  explicit QuietDeviceGuard(int device) {
    if (cudaGetDevice(&previous_) != cudaSuccess) {
      (void)cudaGetLastError();
      previous_ = -1;
      return;
    }
    if (previous_ != device && cudaSetDevice(device) != cudaSuccess) (void)cudaGetLastError();
  }
  ~QuietDeviceGuard() {
    int now = -1;
    if (previous_ >= 0 && cudaGetDevice(&now) == cudaSuccess && now != previous_) cudaSetDevice(previous_);
    (void)cudaGetLastError();
  }
  QuietDeviceGuard(const QuietDeviceGuard&) = delete;
  QuietDeviceGuard& operator=(const QuietDeviceGuard&) = delete;

 private:
  int previous_ = -1;
};

class CachingDeviceAllocator final : public Allocator {
 public:
  explicit CachingDeviceAllocator(int device) : device_(device) {}

  void* allocate(size_t bytes) override {
    const size_t sz = CachingHostAllocator::round_size(bytes);
    cudaStream_t stream = current_stream(device_);
    bool capturing = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      capturing = capture_pool_ && stream == capture_stream_;
      if (void* p = capturing ? take_for_capture(sz) : take_cached(sz, stream)) {
        note_in_use(sz);
        stats_.cache_hits++;
        return p;
      }
    }
    DeviceGuard g(device_);
    void* p = nullptr;
    cudaError_t err = cudaSuccess;
    {
      RelaxedCaptureMode relaxed(capturing);
      err = cudaMalloc(&p, sz);
    }
    if (err == cudaErrorMemoryAllocation && !capturing) {  // emptying synchronises: not while capturing
      (void)cudaGetLastError();
      empty_cache();
      err = cudaMalloc(&p, sz);
    }
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      AllocatorStats s = stats();
      throw Error(str("cuda:", device_, ": allocation of ", bytes, " bytes failed (", cudaGetErrorString(err),
                      "); Halo holds ", s.bytes_in_use, " bytes in use, the device has ", free_b, " of ",
                      total_b, " bytes free: reduce the batch size or use bf16"));
    }
    std::lock_guard<std::mutex> lock(mu_);
    note_in_use(sz);
    stats_.system_allocations++;
    if (capturing) capture_pool_->adopt(p, sz);
    return p;
  }

  void deallocate(void* p, size_t bytes) override {
    if (!p) return;
    const size_t sz = CachingHostAllocator::round_size(bytes);
    cudaStream_t stream = current_stream(device_);
    cudaEvent_t ev = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      // A block of a captured graph stays the graph's, freed during the capture or after
      // (no event: the graph orders its own reuse).
      for (auto& pool : graph_pools_)
        if (pool->give_back(p, sz)) {
          stats_.bytes_in_use -= sz;
          return;
        }
      // A block from before the capture, freed by the captured work: the graph may have
      // read it earlier in its order, so it becomes the graph's too (and no event is
      // recorded on the capturing stream, which other streams could not wait for).
      if (capture_pool_ && stream == capture_stream_) {
        capture_pool_->adopt(p, sz);
        capture_pool_->give_back(p, sz);
        stats_.bytes_in_use -= sz;
        return;
      }
      if (!spare_events_.empty()) {
        ev = spare_events_.back();
        spare_events_.pop_back();
      }
    }
    // Never throws: tensors are freed from destructors, also during process teardown when
    // the runtime may already be gone; then the block is simply not reused.
    int prev = 0;
    if (cudaGetDevice(&prev) != cudaSuccess) return;
    if (prev != device_) cudaSetDevice(device_);
    bool ok = (ev || cudaEventCreateWithFlags(&ev, cudaEventDisableTiming) == cudaSuccess) &&
              cudaEventRecord(ev, stream) == cudaSuccess;
    if (prev != device_) cudaSetDevice(prev);
    std::lock_guard<std::mutex> lock(mu_);
    stats_.bytes_in_use -= sz;
    if (!ok) {
      (void)cudaGetLastError();
      return;
    }
    free_[sz].push_back({p, stream, ev, generation_});
    stats_.bytes_cached += sz;
  }

  void empty_cache() override {
    DeviceGuard g(device_);
    HALO_CUDA_CHECK(cudaDeviceSynchronize());  // every recorded free has then passed
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [sz, blocks] : free_)
      for (CachedBlock& b : blocks) {
        cudaFree(b.ptr);
        cudaEventDestroy(b.freed);
      }
    free_.clear();
    stats_.bytes_cached = 0;
  }

  AllocatorStats stats() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

  // ---- CUDA graphs (graph_capture.hpp) ----
  std::shared_ptr<GraphPool> begin_capture(cudaStream_t stream) {
    {
      DeviceGuard g(device_);
      HALO_CUDA_CHECK(cudaDeviceSynchronize());  // every cached block's free has then passed
    }
    std::lock_guard<std::mutex> lock(mu_);
    HALO_CHECK(!capture_pool_, "cuda:", device_, ": a CUDA graph capture is already running on this device");
    ++generation_;  // blocks cached from now on were freed after the synchronisation above
    capture_pool_ = std::make_shared<GraphPool>();
    capture_stream_ = stream;
    graph_pools_.push_back(capture_pool_);
    return capture_pool_;
  }
  void end_capture() {
    std::lock_guard<std::mutex> lock(mu_);
    capture_pool_.reset();
    capture_stream_ = nullptr;
  }
  void release(const std::shared_ptr<GraphPool>& pool) {
    {
      QuietDeviceGuard g(device_);  // never throws: called from destructors
      if (cudaDeviceSynchronize() != cudaSuccess) (void)cudaGetLastError();  // no replay still running
    }
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < graph_pools_.size(); ++i)
      if (graph_pools_[i] == pool) {
        graph_pools_.erase(graph_pools_.begin() + std::ptrdiff_t(i));
        break;
      }
    if (capture_pool_ == pool) {
      capture_pool_.reset();
      capture_stream_ = nullptr;
    }
    // The graph's free blocks join the cache as if freed now on the legacy stream, after the
    // synchronisation above: usable at once by any stream.
    pool->release([&](void* p, size_t sz) {
      cudaEvent_t ev = nullptr;
      if (!spare_events_.empty()) {
        ev = spare_events_.back();
        spare_events_.pop_back();
      } else if (cudaEventCreateWithFlags(&ev, cudaEventDisableTiming) != cudaSuccess) {
        (void)cudaGetLastError();
        cudaFree(p);  // cannot cache it without an event
        return;
      }
      cudaEventRecord(ev, nullptr);
      free_[sz].push_back({p, nullptr, ev, generation_});
      stats_.bytes_cached += sz;
    });
  }

 private:
  // A cached block of size class sz for work on `stream` (a device-side wait when it was
  // freed on another stream), or nullptr. Under mu_.
  void* take_cached(size_t sz, cudaStream_t stream) {
    auto it = free_.find(sz);
    if (it == free_.end() || it->second.empty()) return nullptr;
    std::vector<CachedBlock>& v = it->second;
    size_t pick = v.size() - 1;  // most recently freed: likeliest still in L2
    for (size_t i = v.size(); i-- > 0;)
      if (v[i].stream == stream) {
        pick = i;
        break;
      }
    CachedBlock b = v[pick];
    v.erase(v.begin() + std::ptrdiff_t(pick));
    if (b.stream != stream) {
      DeviceGuard g(device_);
      HALO_CUDA_CHECK(cudaStreamWaitEvent(stream, b.freed, 0));
    }
    spare_events_.push_back(b.freed);
    stats_.bytes_cached -= sz;
    return b.ptr;
  }
  // For work a graph captures: the graph's own freed blocks first, then a cached block freed
  // before the capture began, made the graph's. begin_capture waited for the device, so such
  // a block's recorded free has passed and no event needs waiting for (which a capture could
  // not do); blocks other threads freed since may still be in use on their streams. Under mu_.
  void* take_for_capture(size_t sz) {
    if (void* p = capture_pool_->take(sz)) return p;
    auto it = free_.find(sz);
    if (it == free_.end()) return nullptr;
    std::vector<CachedBlock>& v = it->second;
    size_t pick = v.size();
    for (size_t i = v.size(); i-- > 0;)
      if (v[i].generation < generation_) {
        pick = i;
        break;
      }
    if (pick == v.size()) return nullptr;
    CachedBlock b = v[pick];
    v.erase(v.begin() + std::ptrdiff_t(pick));
    spare_events_.push_back(b.freed);
    stats_.bytes_cached -= sz;
    capture_pool_->adopt(b.ptr, sz);
    return b.ptr;
  }

  void note_in_use(size_t sz) {
    stats_.bytes_in_use += sz;
    stats_.peak_bytes_in_use = std::max(stats_.peak_bytes_in_use, stats_.bytes_in_use);
  }

  int device_;
  mutable std::mutex mu_;
  std::map<size_t, std::vector<CachedBlock>> free_;  // size class -> blocks
  std::vector<cudaEvent_t> spare_events_;
  AllocatorStats stats_;
  std::shared_ptr<GraphPool> capture_pool_;  // the graph being captured on this device, if any
  cudaStream_t capture_stream_ = nullptr;    // the stream it captures
  uint64_t generation_ = 0;                  // begin_capture() counts up
  std::vector<std::shared_ptr<GraphPool>> graph_pools_;  // every live graph's memory
};

// Page-locked host memory is slow to allocate (it maps pages into the driver), so blocks
// are cached too. A freed block may still be the source of a queued copy: it is reused only
// after the event recorded at the free has completed on the host's side.
class CachingPinnedAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes) override {
    if (!available()) throw_no_gpu(0);
    const size_t sz = CachingHostAllocator::round_size(bytes);
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.find(sz);
      if (it != free_.end() && !it->second.empty()) {
        CachedBlock b = it->second.back();
        it->second.pop_back();
        HALO_CUDA_CHECK(cudaEventSynchronize(b.freed));
        cudaEventDestroy(b.freed);
        stats_.bytes_cached -= sz;
        stats_.bytes_in_use += sz;
        stats_.peak_bytes_in_use = std::max(stats_.peak_bytes_in_use, stats_.bytes_in_use);
        stats_.cache_hits++;
        return b.ptr;
      }
    }
    void* p = nullptr;
    cudaError_t err = cudaHostAlloc(&p, sz, cudaHostAllocPortable);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      empty_cache();
      HALO_CUDA_CHECK(cudaHostAlloc(&p, sz, cudaHostAllocPortable));
    }
    std::lock_guard<std::mutex> lock(mu_);
    stats_.bytes_in_use += sz;
    stats_.peak_bytes_in_use = std::max(stats_.peak_bytes_in_use, stats_.bytes_in_use);
    stats_.system_allocations++;
    return p;
  }

  void deallocate(void* p, size_t bytes) override {
    if (!p) return;
    const size_t sz = CachingHostAllocator::round_size(bytes);
    int dev = 0;
    cudaEvent_t ev = nullptr;
    bool ok = cudaGetDevice(&dev) == cudaSuccess &&
              cudaEventCreateWithFlags(&ev, cudaEventDisableTiming) == cudaSuccess &&
              cudaEventRecord(ev, current_stream(dev)) == cudaSuccess;
    std::lock_guard<std::mutex> lock(mu_);
    stats_.bytes_in_use -= sz;
    if (!ok) {
      (void)cudaGetLastError();
      return;
    }
    free_[sz].push_back({p, nullptr, ev, 0});
    stats_.bytes_cached += sz;
  }

  void empty_cache() override {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [sz, blocks] : free_)
      for (CachedBlock& b : blocks) {
        cudaEventSynchronize(b.freed);
        cudaEventDestroy(b.freed);
        cudaFreeHost(b.ptr);
      }
    free_.clear();
    stats_.bytes_cached = 0;
  }

  AllocatorStats stats() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

 private:
  mutable std::mutex mu_;
  std::map<size_t, std::vector<CachedBlock>> free_;
  AllocatorStats stats_;
};

CachingDeviceAllocator& caching_device_allocator(int index) {
  // Never destroyed: tensors in static objects may be freed after main returns.
  static std::vector<CachingDeviceAllocator*>* all = [] {
    auto* v = new std::vector<CachingDeviceAllocator*>;
    for (int i = 0; i < device_count(); ++i) v->push_back(new CachingDeviceAllocator(i));
    return v;
  }();
  if (index < 0 || index >= int(all->size())) throw_no_gpu(index);
  return *(*all)[size_t(index)];
}

Allocator& device_allocator(int index) { return caching_device_allocator(index); }

// Synchronous for the caller where the host or another GPU is involved, as the tensor core
// expects; queued on the current stream so it is ordered after the kernels that produced
// the source (and, within one GPU, before those that read the copy).
void copy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes) {
  const int dev = dst_dev.is_cuda() ? dst_dev.index : src_dev.index;
  if (dev >= device_count()) throw_no_gpu(dev);
  DeviceGuard g(dev);
  cudaStream_t stream = current_stream(dev);
  HALO_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream));
  // Within one GPU the stream orders the copy before whatever reads the destination next, so
  // the host need not wait (and a CUDA graph can capture it: clone() of an activation).
  if (dst_dev == src_dev) return;
  HALO_CUDA_CHECK(cudaStreamSynchronize(stream));
}

}  // namespace

// ---- graph_capture.hpp ----
std::shared_ptr<GraphPool> detail::begin_capture_pool(int device, StreamHandle stream) {
  return caching_device_allocator(device).begin_capture(stream);
}
void detail::end_capture_pool(int device) { caching_device_allocator(device).end_capture(); }
void detail::release_pool(int device, const std::shared_ptr<GraphPool>& pool) {
  caching_device_allocator(device).release(pool);
}

Allocator& pinned_host_allocator() {
  static auto* a = new CachingPinnedAllocator;
  return *a;
}

Tensor pinned_empty(const Shape& shape, DType dtype, MemoryFormat fmt) {
  const size_t bytes = size_t(std::max<int64_t>(numel(shape), 1)) * size_of(dtype);
  void* p = pinned_host_allocator().allocate(bytes);
  Strides strides = fmt == MemoryFormat::channels_last ? channels_last_strides(shape) : contiguous_strides(shape);
  return Tensor::from_blob(p, shape, dtype, Device::cpu(), strides,
                           [p, bytes] { pinned_host_allocator().deallocate(p, bytes); });
}

void copy_async(Tensor& dst, const Tensor& src, const Stream& stream) {
  HALO_CHECK_SHAPE(dst.defined() && src.defined() && dst.shape() == src.shape() && dst.dtype() == src.dtype() &&
                       dst.strides() == src.strides() && dst.is_dense(),
                   "copy_async: destination ", dst.str(), " and source ", src.str(),
                   " must agree in shape, dtype and layout and be dense");
  DeviceGuard g(stream.device());
  HALO_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), dst.nbytes(), cudaMemcpyDefault, stream.handle()));
}

/// Called by the tensor core whenever it looks up the cuda backend; registers it once.
void register_backend() {
  static std::once_flag once;
  std::call_once(once, [] {
    DeviceBackend be;
    be.allocator = [](int index) -> Allocator& { return device_allocator(index); };
    be.copy = copy;
    be.convert = [](Tensor& dst, const Tensor& src) { return convert(dst, src); };
    be.fill = [](Tensor& dst, double value) { return fill_dense(dst, value); };
    register_device_backend(DeviceKind::cuda, std::move(be));
  });
}

}  // namespace halo::cuda
