#include <catch2/catch.hpp>

#include "halo/tensor/tensor.hpp"
#include "gradcheck.hpp"

using namespace halo;

TEST_CASE("tensor basics: shape, strides, fill, item") {
  Tensor t = Tensor::zeros({2, 3, 4});
  CHECK(t.numel() == 24);
  CHECK(t.strides() == Strides{12, 4, 1});
  CHECK(t.is_contiguous());
  CHECK(t.size(-1) == 4);
  CHECK_THROWS_AS(t.size(3), ShapeError);
  t.fill_(2.5);
  for (float v : t.to_vector<float>()) CHECK(v == 2.5f);
  CHECK(Tensor::full({1}, 3.0).item() == 3.0);
  CHECK(t.str() == "f32[2,3,4] cpu");
}

TEST_CASE("reshape and slice are views; reshape infers -1") {
  Tensor t = Tensor::from_vector<float>({0, 1, 2, 3, 4, 5}, {2, 3});
  Tensor r = t.reshape({3, -1});
  CHECK(r.shape() == Shape{3, 2});
  CHECK(r.raw_data() == t.raw_data());
  Tensor s = t.slice(1, 2);
  CHECK(s.shape() == Shape{1, 3});
  CHECK(s.to_vector<float>() == std::vector<float>{3, 4, 5});
  CHECK_THROWS_AS(t.reshape({4, 2}), ShapeError);
}

TEST_CASE("channels-last round trip keeps logical values") {
  Tensor t = testing::random_tensor({2, 3, 4, 5, 6}, 1, DType::f32);
  Tensor cl = t.to_memory_format(MemoryFormat::channels_last);
  CHECK(cl.is_channels_last());
  CHECK_FALSE(cl.is_contiguous());
  CHECK(cl.is_dense());
  CHECK(cl.strides()[1] == 1);
  CHECK(cl.to_vector<float>() == t.to_vector<float>());
  CHECK(cl.contiguous().to_vector<float>() == t.to_vector<float>());
}

TEST_CASE("dtype conversion: f64, bf16 and f16 storage") {
  Tensor t = Tensor::from_vector<float>({1.0f, -2.5f, 3.140625f, 65504.0f, 1e-7f}, {5});
  auto back64 = t.to(DType::f64).to(DType::f32).to_vector<float>();
  CHECK(back64 == t.to_vector<float>());
  auto h = t.to(DType::f16).to_vector<float>();
  CHECK(h[0] == 1.0f);
  CHECK(h[1] == -2.5f);
  CHECK(h[2] == 3.140625f);
  CHECK(h[3] == 65504.0f);
  CHECK(h[4] == 2.0f / 16777216.0f);  // 1e-7 rounds to two half subnormal steps
  auto b = t.to(DType::bf16).to_vector<float>();
  CHECK(b[0] == 1.0f);
  CHECK(b[1] == -2.5f);
  CHECK(b[2] == Approx(3.140625f).epsilon(1.0 / 128));
  // round to nearest even at the bf16 boundary
  CHECK(float(bf16(1.0f + 1.0f / 256)) == 1.0f);
  CHECK(float(bf16(1.0f + 3.0f / 256)) == 1.0f + 1.0f / 64);
}

TEST_CASE("caching allocator reuses freed blocks") {
  CachingHostAllocator a;
  void* p = a.allocate(1000000);
  a.deallocate(p, 1000000);
  void* q = a.allocate(990000);  // same size class
  CHECK(q == p);
  auto s = a.stats();
  CHECK(s.system_allocations == 1);
  CHECK(s.cache_hits == 1);
  CHECK(reinterpret_cast<uintptr_t>(q) % 64 == 0);
  a.deallocate(q, 990000);
  a.empty_cache();
  CHECK(a.stats().bytes_cached == 0);
  CHECK(CachingHostAllocator::round_size(5000) >= 5000);
  CHECK(CachingHostAllocator::round_size(5000) <= 5000 * 5 / 4 + 512);
}

TEST_CASE("caching allocator peak follows the bytes in use and restarts on reset_peak") {
  CachingHostAllocator a;
  void* p = a.allocate(1 << 20);
  void* q = a.allocate(1 << 20);
  const size_t two = a.stats().bytes_in_use;
  CHECK(two >= size_t(2) << 20);
  CHECK(a.stats().peak_bytes_in_use == two);
  a.deallocate(q, 1 << 20);
  CHECK(a.stats().peak_bytes_in_use == two);  // the peak outlives the free
  a.reset_peak();
  CHECK(a.stats().peak_bytes_in_use == a.stats().bytes_in_use);
  CHECK(a.stats().peak_bytes_in_use < two);
  a.deallocate(p, 1 << 20);
  a.empty_cache();
}

TEST_CASE("training-step allocation pattern hits the cache") {
  Allocator& a = allocator_for(Device::cpu());
  { Tensor warm = Tensor::empty({4, 32, 16, 16, 16}); }
  auto before = a.stats().system_allocations;
  for (int step = 0; step < 5; ++step) { Tensor t = Tensor::empty({4, 32, 16, 16, 16}); }
  CHECK(a.stats().system_allocations == before);
}

TEST_CASE("from_blob wraps memory without copying") {
  std::vector<double> buf(6, 1.0);
  bool released = false;
  {
    Tensor t = Tensor::from_blob(buf.data(), {2, 3}, DType::f64, Device::cpu(), {}, [&] { released = true; });
    t.fill_(4.0);
  }
  CHECK(buf[5] == 4.0);
  CHECK(released);
}

TEST_CASE("errors name the shapes") {
  Tensor a = Tensor::zeros({2, 3});
  Tensor b = Tensor::zeros({3, 2});
  try {
    a.copy_(b);
    FAIL("expected a ShapeError");
  } catch (const ShapeError& e) {
    std::string m = e.what();
    CHECK(m.find("[2,3]") != std::string::npos);
    CHECK(m.find("[3,2]") != std::string::npos);
  }
  CHECK_THROWS_AS(a.data<double>(), ShapeError);
  CHECK_THROWS_AS(Device::parse("tpu"), ConfigError);
  CHECK(Device::parse("cuda:3").index == 3);
}
