// GraphPool: the memory of one captured CUDA graph, as a caching allocator keeps it.
//
// A graph replays the kernels it captured with the pointers they had at capture time. So
// every block the captured work used (the step's activations, workspaces, gradients it made,
// the loss) must stay the graph's for as long as the graph can be replayed: a block freed
// during the capture may be handed out again within the same capture (the graph orders
// that reuse as the stream did), but never to work outside the graph, even when the tensor
// that held it is freed long after the capture (a static output read between replays).
// The pool is that bookkeeping, and nothing else: the allocator asks it first while a
// capture is running (take), tells it about blocks it adds (adopt), offers it every freed
// block (give_back: kept when the pool owns it), and gets every block back when the graph
// goes (release). No device calls here, so the rules are tested on any machine
// (tests/unit/test_graph_pool.cpp).
#pragma once
#include <cstddef>
#include <functional>
#include <map>
#include <unordered_map>
#include <vector>

#include "halo/util/error.hpp"

namespace halo {

class GraphPool {
 public:
  /// A free block of exactly `size` bytes (a size class) owned by the pool, or nullptr.
  void* take(size_t size) {
    auto it = free_.find(size);
    if (it == free_.end() || it->second.empty()) return nullptr;
    void* p = it->second.back();
    it->second.pop_back();
    free_bytes_ -= size;
    return p;
  }
  /// Makes a block (new, or taken from the allocator's general cache) the pool's, in use.
  void adopt(void* p, size_t size) {
    HALO_CHECK(p != nullptr, "GraphPool::adopt: null block");
    HALO_CHECK(owned_.emplace(p, size).second, "GraphPool::adopt: block ", p, " is already the pool's");
    owned_bytes_ += size;
  }
  /// True when the pool owns `p`; the block is then free for the pool's next take(). False
  /// (nothing done) for a block that is not the pool's: the allocator caches it as usual.
  bool give_back(void* p, size_t size) {
    auto it = owned_.find(p);
    if (it == owned_.end()) return false;
    HALO_CHECK(it->second == size, "GraphPool::give_back: block ", p, " of ", it->second, " bytes freed as ", size);
    free_[size].push_back(p);
    free_bytes_ += size;
    return true;
  }
  bool owns(const void* p) const { return owned_.count(const_cast<void*>(p)) != 0; }
  size_t blocks() const { return owned_.size(); }
  size_t bytes() const { return owned_bytes_; }
  /// Bytes of the pool's blocks that are free (freed during or after the capture).
  size_t free_bytes() const { return free_bytes_; }
  /// Hands every block to `to` (pointer, size) once and forgets them all: the graph is gone,
  /// so its free blocks go back to the allocator's cache. Blocks still held by tensors stay
  /// listed in `held` (their owners free them later, to the general cache).
  void release(const std::function<void(void*, size_t)>& to, std::vector<std::pair<void*, size_t>>* held = nullptr) {
    std::unordered_map<void*, bool> is_free;
    for (auto& [size, v] : free_)
      for (void* p : v) is_free[p] = true;
    for (auto& [p, size] : owned_) {
      if (is_free.count(p))
        to(p, size);
      else if (held)
        held->emplace_back(p, size);
    }
    owned_.clear();
    free_.clear();
    owned_bytes_ = free_bytes_ = 0;
  }

 private:
  std::unordered_map<void*, size_t> owned_;     // every block the graph may touch -> size
  std::map<size_t, std::vector<void*>> free_;   // size class -> the pool's free blocks
  size_t owned_bytes_ = 0, free_bytes_ = 0;
};

}  // namespace halo
