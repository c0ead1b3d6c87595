// GraphPool (halo/tensor/graph_pool.hpp): the rules by which a captured CUDA graph keeps its
// memory, on host addresses standing in for device blocks. The device allocator applies them
// (kernels/cuda/device_backend.cpp); test_graph_cuda.cpp checks the captured step itself.
#include <catch2/catch.hpp>

#include <set>
#include <vector>

#include "halo/tensor/graph_pool.hpp"

using namespace halo;

namespace {
// Distinct fake block addresses (never dereferenced).
void* block(size_t i) { return reinterpret_cast<void*>(uintptr_t(0x10000) * (i + 1)); }
}  // namespace

TEST_CASE("graph pool: blocks freed during the capture are reused within it, by size class") {
  GraphPool pool;
  CHECK(pool.take(256) == nullptr);  // nothing yet: the allocator finds or makes one and adopts it
  pool.adopt(block(0), 256);
  pool.adopt(block(1), 512);
  CHECK(pool.blocks() == 2);
  CHECK(pool.bytes() == 768);
  CHECK(pool.free_bytes() == 0);
  CHECK(pool.give_back(block(0), 256));  // an activation freed by backward
  CHECK(pool.free_bytes() == 256);
  CHECK(pool.take(512) == nullptr);  // another size class
  CHECK(pool.take(256) == block(0));  // the same block again, for a later kernel of the step
  CHECK(pool.take(256) == nullptr);
  CHECK(pool.free_bytes() == 0);
  CHECK(pool.blocks() == 2);
}

TEST_CASE("graph pool: a block that is not the graph's goes to the allocator; the graph's never do") {
  GraphPool pool;
  pool.adopt(block(0), 1024);
  CHECK_FALSE(pool.give_back(block(7), 1024));  // allocated before the capture: cached as usual
  CHECK_FALSE(pool.owns(block(7)));
  // The loss tensor lives past the capture and is freed later: it stays the graph's, because
  // the next replay writes it again.
  CHECK(pool.owns(block(0)));
  CHECK(pool.give_back(block(0), 1024));
  CHECK(pool.owns(block(0)));
  CHECK(pool.blocks() == 1);
  CHECK_THROWS(pool.adopt(block(0), 1024));  // one block cannot be adopted twice
  CHECK_THROWS(pool.give_back(block(0), 2048));  // nor freed with another size
}

TEST_CASE("graph pool: release hands every free block back once and lists the held ones") {
  GraphPool pool;
  for (size_t i = 0; i < 6; ++i) pool.adopt(block(i), 256 << (i % 3));
  for (size_t i : {0, 2, 3, 5}) REQUIRE(pool.give_back(block(i), 256 << (i % 3)));
  std::vector<std::pair<void*, size_t>> returned, held;
  pool.release([&](void* p, size_t size) { returned.emplace_back(p, size); }, &held);
  std::set<void*> back;
  for (auto& [p, size] : returned) {
    CHECK(back.insert(p).second);  // once each
    CHECK(size == size_t(256) << ((reinterpret_cast<uintptr_t>(p) / 0x10000 - 1) % 3));
  }
  CHECK(back == std::set<void*>{block(0), block(2), block(3), block(5)});
  std::set<void*> still;
  for (auto& [p, size] : held) still.insert(p);
  CHECK(still == std::set<void*>{block(1), block(4)});  // their tensors free them later, to the cache
  CHECK(pool.blocks() == 0);
  CHECK(pool.bytes() == 0);
  CHECK_FALSE(pool.give_back(block(1), 512));  // forgotten: the graph is gone
  CHECK(pool.take(256) == nullptr);
}
