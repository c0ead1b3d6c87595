// What cuda::Graph (runtime.cpp) asks of the device allocator (device_backend.cpp): while a
// graph captures work on a stream of `device`, the allocator serves that stream from the
// graph's GraphPool (halo/tensor/graph_pool.hpp), and keeps the pool's blocks out of its
// general cache until the graph releases them.
#pragma once
#include <memory>

#include "halo/cuda/runtime.hpp"
#include "halo/tensor/graph_pool.hpp"

namespace halo::cuda::detail {

/// Waits for the device, then routes allocations on `stream` to a new pool (returned); one
/// capture per device at a time.
std::shared_ptr<GraphPool> begin_capture_pool(int device, StreamHandle stream);
/// Allocations on the stream go to the general cache again; the pool keeps its blocks.
void end_capture_pool(int device);
/// The graph is gone: waits for the device and gives the pool's free blocks to the cache.
/// Never throws.
void release_pool(int device, const std::shared_ptr<GraphPool>& pool);

}  // namespace halo::cuda::detail
