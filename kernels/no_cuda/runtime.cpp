// include/halo/cuda/runtime.hpp in builds without CUDA: no GPU is ever available, and
// everything that would need one says that this build has none.
#include "halo/cuda/runtime.hpp"

#include "backends.hpp"
#include "halo/util/error.hpp"

namespace halo::cuda {

namespace {
[[noreturn]] void no_cuda(const char* what) {
  throw Error(str(what, ": ", kernels::missing_backend_hint(DeviceKind::cuda)));
}
}  // namespace

bool available() { return false; }
int device_count() { return 0; }

Stream::Stream(int) { no_cuda("cuda::Stream"); }
Stream::~Stream() = default;
void Stream::synchronize() const { no_cuda("cuda::Stream::synchronize"); }

StreamHandle current_stream(int) { no_cuda("cuda::current_stream"); }

StreamGuard::StreamGuard(const Stream&) : device_(0), previous_(nullptr) { no_cuda("cuda::StreamGuard"); }
StreamGuard::~StreamGuard() = default;

DeviceGuard::DeviceGuard(int) : previous_(0) { no_cuda("cuda::DeviceGuard"); }
DeviceGuard::~DeviceGuard() = default;

void synchronize(int) { no_cuda("cuda::synchronize"); }
void set_device(int) { no_cuda("cuda::set_device"); }

Event::Event(int, bool) { no_cuda("cuda::Event"); }
double elapsed_seconds(const Event&, const Event&) { no_cuda("cuda::elapsed_seconds"); }
Event::~Event() = default;
void Event::record(StreamHandle) { no_cuda("cuda::Event::record"); }
void Event::synchronize() const { no_cuda("cuda::Event::synchronize"); }
void Event::block(StreamHandle) const { no_cuda("cuda::Event::block"); }

Allocator& pinned_host_allocator() { no_cuda("cuda::pinned_host_allocator"); }
Tensor pinned_empty(const Shape&, DType, MemoryFormat) { no_cuda("cuda::pinned_empty"); }
void copy_async(Tensor&, const Tensor&, const Stream&) { no_cuda("cuda::copy_async"); }

namespace detail {
struct ReplayCells {};
}  // namespace detail

Graph::Graph(int) { no_cuda("cuda::Graph"); }
Graph::~Graph() = default;
void Graph::begin_capture(const Stream&) { no_cuda("cuda::Graph::begin_capture"); }
void Graph::end_capture() { no_cuda("cuda::Graph::end_capture"); }
void Graph::replay(const Stream&) { no_cuda("cuda::Graph::replay"); }
size_t Graph::pool_bytes() const { return 0; }
const uint64_t* replay_value(int, std::function<uint64_t()>) { return nullptr; }  // nothing is ever captured

}  // namespace halo::cuda
