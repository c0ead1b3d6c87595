// Memory per device. The CPU allocator caches freed blocks by size class, so that the
// second and later training steps reuse memory instead of page-faulting through fresh
// allocations. Other devices register their allocator and copy routine at start-up.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>

#include "halo/tensor/device.hpp"

namespace halo {

class Tensor;

struct AllocatorStats {
  size_t bytes_in_use = 0;     ///< handed out and not yet returned
  size_t bytes_cached = 0;     ///< returned and kept for reuse
  size_t peak_bytes_in_use = 0;
  uint64_t system_allocations = 0;  ///< allocations that went to the system
  uint64_t cache_hits = 0;          ///< allocations served from the cache
};

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* p, size_t bytes) = 0;
  /// Returns cached blocks to the system.
  virtual void empty_cache() {}
  virtual AllocatorStats stats() const { return {}; }
  /// Restarts peak_bytes_in_use from the bytes in use now (to measure one phase's peak).
  virtual void reset_peak() {}
};

/// Size-class caching allocator for host memory: 64-byte aligned; blocks of 2 MiB or more
/// are 2 MiB aligned and advised for transparent huge pages.
class CachingHostAllocator final : public Allocator {
 public:
  CachingHostAllocator();
  ~CachingHostAllocator() override;
  void* allocate(size_t bytes) override;
  void deallocate(void* p, size_t bytes) override;
  void empty_cache() override;
  AllocatorStats stats() const override;
  void reset_peak() override;
  /// The size class a request of `bytes` is rounded up to.
  static size_t round_size(size_t bytes);

 private:
  struct Impl;
  Impl* impl_;
};

/// What a device backend provides to the tensor core.
struct DeviceBackend {
  std::function<Allocator&(int index)> allocator;
  /// Copies bytes between host and device or within a device (synchronously for the caller).
  std::function<void(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes)> copy;
  /// Optional: on-device copy between tensors of one device that differ in dtype or strides
  /// (layout changes, casts). Returns false when it cannot, and the copy is staged through
  /// the host instead.
  std::function<bool(Tensor& dst, const Tensor& src)> convert;
  /// Optional: fills a dense device tensor with a value; false when it cannot.
  std::function<bool(Tensor& dst, double value)> fill;
};

void register_device_backend(DeviceKind kind, DeviceBackend backend);
/// Throws if the kind has no backend in this build or process.
const DeviceBackend& device_backend(DeviceKind kind);
Allocator& allocator_for(Device d);

}  // namespace halo
