// The CUDA backend of the tensor core: caching allocator (reuse, stream ordering), copies
// between host and device in every dtype and layout, pinned buffers and asynchronous copies.
#include <catch2/catch.hpp>

#include <cuda_runtime.h>

#include <random>

#include "../../kernels/cuda/elementwise.hpp"
#include "gpu_test_skip.hpp"
#include "halo/tensor/tensor.hpp"

using namespace halo;

namespace {
std::vector<float> random_values(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}
}  // namespace

TEST_CASE("cuda allocator reuses a freed block of the same size class on the same stream") {
  Allocator& a = allocator_for(Device::cuda());
  a.empty_cache();
  const AllocatorStats before = a.stats();
  void* p = a.allocate(3 << 20);
  a.deallocate(p, 3 << 20);
  void* q = a.allocate((3 << 20) - 100);  // same size class
  CHECK(q == p);
  const AllocatorStats after = a.stats();
  CHECK(after.cache_hits == before.cache_hits + 1);
  CHECK(after.system_allocations == before.system_allocations + 1);
  CHECK(after.bytes_in_use >= size_t(3 << 20));
  a.deallocate(q, (3 << 20) - 100);
  CHECK(a.stats().bytes_in_use == before.bytes_in_use);
}

TEST_CASE("cuda allocator orders reuse on another stream after the work queued before the free") {
  // Stream A writes 1.0 into a large block many times (milliseconds of work), frees it while
  // that work is still queued; stream B gets the same block and writes 2.0 once. Without
  // the allocator's cross-stream wait, A's later writes would land after B's and leave 1.0.
  cuda::Stream sa(0), sb(0);
  const int64_t n = int64_t(64) << 20;  // 256 MiB of f32
  Tensor first;
  void* block = nullptr;
  {
    cuda::StreamGuard g(sa);
    first = Tensor::empty({n}, DType::f32, Device::cuda());
    block = first.raw_data();
    for (int i = 0; i < 40; ++i) cuda::fill(first, 1.f);
    first = Tensor();  // freed on stream A while A is still busy
  }
  Tensor second;
  {
    cuda::StreamGuard g(sb);
    second = Tensor::empty({n}, DType::f32, Device::cuda());
    REQUIRE(second.raw_data() == block);  // the cached block, handed to another stream
    cuda::fill(second, 2.f);
    sb.synchronize();
  }
  sa.synchronize();
  std::vector<float> host(static_cast<size_t>(n));
  REQUIRE(cudaMemcpy(host.data(), second.raw_data(), size_t(n) * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
  int64_t wrong = 0;
  for (float v : host) wrong += v != 2.f;
  CHECK(wrong == 0);
}

TEST_CASE("tensors round-trip between host and device in every dtype and layout") {
  const Shape s{2, 3, 4, 5, 6};
  auto v = random_values(size_t(numel(s)), 1);
  Tensor h = Tensor::from_vector(v, s);
  for (DType dt : {DType::f32, DType::bf16, DType::f64, DType::f16}) {
    for (MemoryFormat fmt : {MemoryFormat::contiguous, MemoryFormat::channels_last}) {
      Tensor src = h.to(dt).to_memory_format(fmt);
      Tensor d = src.to(Device::cuda());
      CHECK(d.device() == Device::cuda());
      CHECK(d.dtype() == dt);
      CHECK(d.memory_format() == src.memory_format());
      Tensor back = d.to(Device::cpu());
      CHECK(back.to_vector<double>() == src.to_vector<double>());
    }
  }
  // A layout change and a dtype change on the device go through the host and stay exact.
  Tensor d = h.to(Device::cuda());
  Tensor cl = d.to_memory_format(MemoryFormat::channels_last);
  CHECK(cl.device() == Device::cuda());
  CHECK(cl.to_vector<float>() == v);
  CHECK(d.to(DType::bf16).to_vector<double>() == h.to(DType::bf16).to_vector<double>());
  // Device-to-device copy.
  Tensor d2 = Tensor::empty(s, DType::f32, Device::cuda());
  d2.copy_(d);
  CHECK(d2.to_vector<float>() == v);
}

TEST_CASE("pinned host buffers feed asynchronous copies on an explicit stream") {
  cuda::Stream copy_stream(0);
  const Shape s{4, 4, 16, 16, 16};
  auto v = random_values(size_t(numel(s)), 2);
  Tensor pinned = cuda::pinned_empty(s, DType::f32, MemoryFormat::channels_last);
  CHECK(pinned.device().is_cpu());
  CHECK(pinned.is_channels_last());
  pinned.copy_(Tensor::from_vector(v, s));
  cudaPointerAttributes attr{};
  REQUIRE(cudaPointerGetAttributes(&attr, pinned.raw_data()) == cudaSuccess);
  CHECK(attr.type == cudaMemoryTypeHost);  // page-locked, registered with the driver

  Tensor d = Tensor::empty(s, DType::f32, Device::cuda(), MemoryFormat::channels_last);
  cuda::copy_async(d, pinned, copy_stream);
  copy_stream.synchronize();
  CHECK(d.to_vector<float>() == v);

  // A freed pinned block comes back from the cache.
  void* p = pinned.raw_data();
  pinned = Tensor();
  Tensor again = cuda::pinned_empty(s, DType::f32, MemoryFormat::channels_last);
  CHECK(again.raw_data() == p);

  Tensor wrong = Tensor::empty({4, 4}, DType::f32, Device::cuda());
  CHECK_THROWS_AS(cuda::copy_async(wrong, again, copy_stream), ShapeError);
}

TEST_CASE("a GPU index beyond the visible devices is refused with a message") {
  const int n = cuda::device_count();
  REQUIRE(n >= 1);
  CHECK_THROWS_WITH(Tensor::empty({4}, DType::f32, Device::cuda(n)), Catch::Contains("CUDA GPU(s) are visible"));
}
