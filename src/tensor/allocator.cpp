#include "halo/tensor/allocator.hpp"

#include <sys/mman.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "backends.hpp"
#include "halo/util/error.hpp"

namespace halo {

namespace {
constexpr size_t kSmallAlign = 64;
constexpr size_t kHuge = size_t(2) << 20;
}  // namespace

struct CachingHostAllocator::Impl {
  mutable std::mutex mu;
  std::map<size_t, std::vector<void*>> free_blocks;  // size class -> cached blocks
  AllocatorStats stats;
};

CachingHostAllocator::CachingHostAllocator() : impl_(new Impl) {}
CachingHostAllocator::~CachingHostAllocator() {
  empty_cache();
  delete impl_;
}

size_t CachingHostAllocator::round_size(size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (bytes <= 4096) return (bytes + 511) / 512 * 512;
  // Four classes per power of two: at most 25% slack, few distinct sizes to cache.
  size_t p = 1;
  while (p < bytes) p <<= 1;
  size_t step = p / 8;
  return (bytes + step - 1) / step * step;
}

void* CachingHostAllocator::allocate(size_t bytes) {
  size_t sz = round_size(bytes);
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    auto it = impl_->free_blocks.find(sz);
    if (it != impl_->free_blocks.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      impl_->stats.bytes_cached -= sz;
      impl_->stats.bytes_in_use += sz;
      impl_->stats.peak_bytes_in_use = std::max(impl_->stats.peak_bytes_in_use, impl_->stats.bytes_in_use);
      impl_->stats.cache_hits++;
      return p;
    }
  }
  size_t align = sz >= kHuge ? kHuge : kSmallAlign;
  void* p = std::aligned_alloc(align, (sz + align - 1) / align * align);
  if (!p) {
    empty_cache();
    p = std::aligned_alloc(align, (sz + align - 1) / align * align);
  }
  HALO_CHECK(p != nullptr, "host allocation of ", bytes, " bytes failed (", stats().bytes_in_use,
             " bytes in use)");
  if (sz >= kHuge) madvise(p, sz, MADV_HUGEPAGE);
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->stats.bytes_in_use += sz;
  impl_->stats.peak_bytes_in_use = std::max(impl_->stats.peak_bytes_in_use, impl_->stats.bytes_in_use);
  impl_->stats.system_allocations++;
  return p;
}

void CachingHostAllocator::deallocate(void* p, size_t bytes) {
  if (!p) return;
  size_t sz = round_size(bytes);
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->free_blocks[sz].push_back(p);
  impl_->stats.bytes_in_use -= sz;
  impl_->stats.bytes_cached += sz;
}

void CachingHostAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  for (auto& [sz, blocks] : impl_->free_blocks)
    for (void* p : blocks) std::free(p);
  impl_->free_blocks.clear();
  impl_->stats.bytes_cached = 0;
}

AllocatorStats CachingHostAllocator::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->stats;
}

void CachingHostAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->stats.peak_bytes_in_use = impl_->stats.bytes_in_use;
}

namespace {
std::mutex g_backend_mu;
std::unordered_map<int, DeviceBackend>& backends() {
  static std::unordered_map<int, DeviceBackend> m;
  return m;
}
CachingHostAllocator& host_allocator() {
  // Never destroyed: tensors held in static objects may be freed after main returns.
  static auto* a = new CachingHostAllocator;
  return *a;
}
}  // namespace

void register_device_backend(DeviceKind kind, DeviceBackend backend) {
  std::lock_guard<std::mutex> lock(g_backend_mu);
  backends()[int(kind)] = std::move(backend);
}

const DeviceBackend& device_backend(DeviceKind kind) {
  // On first use: the backends register themselves (kernels/backends.hpp), which touches no
  // device, so a GPU-less machine pays nothing until a cuda tensor is asked for.
  kernels::register_builtin_backends();
  std::lock_guard<std::mutex> lock(g_backend_mu);
  auto it = backends().find(int(kind));
  HALO_CHECK(it != backends().end(), "no backend for device kind ", kind == DeviceKind::cuda ? "cuda: " : "cpu: ",
             kernels::missing_backend_hint(kind));
  return it->second;
}

Allocator& allocator_for(Device d) {
  if (d.is_cpu()) return host_allocator();
  return device_backend(d.kind).allocator(d.index);
}

}  // namespace halo
