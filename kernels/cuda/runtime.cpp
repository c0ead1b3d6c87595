// Streams, guards and availability (include/halo/cuda/runtime.hpp).
#include "halo/cuda/runtime.hpp"

#include <cuda_runtime.h>

#include <unordered_map>
#include <vector>

#include "cuda/check.hpp"
#include "cuda/graph_capture.hpp"
#include "halo/tensor/graph_pool.hpp"

namespace halo::cuda {

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no driver/no device" error
    return 0;
  }
  return n;
}

bool available() {
  static const bool yes = device_count() > 0;
  return yes;
}

Stream::Stream(int device) : device_(device) {
  DeviceGuard g(device);
  HALO_CUDA_CHECK(cudaStreamCreateWithFlags(&handle_, cudaStreamNonBlocking));
}
Stream::~Stream() {
  if (handle_) {
    DeviceGuard g(device_);
    cudaStreamDestroy(handle_);
  }
}
void Stream::synchronize() const { HALO_CUDA_CHECK(cudaStreamSynchronize(handle_)); }

namespace {
thread_local std::unordered_map<int, StreamHandle> t_current_stream;
}

StreamHandle current_stream(int device) {
  auto it = t_current_stream.find(device);
  return it == t_current_stream.end() ? nullptr : it->second;
}

StreamGuard::StreamGuard(const Stream& stream) : device_(stream.device()), previous_(current_stream(stream.device())) {
  t_current_stream[device_] = stream.handle();
}
StreamGuard::~StreamGuard() { t_current_stream[device_] = previous_; }

DeviceGuard::DeviceGuard(int device) : previous_(0) {
  HALO_CUDA_CHECK(cudaGetDevice(&previous_));
  if (previous_ != device) HALO_CUDA_CHECK(cudaSetDevice(device));
}
DeviceGuard::~DeviceGuard() {
  int now = -1;
  if (cudaGetDevice(&now) == cudaSuccess && now != previous_) cudaSetDevice(previous_);
}

void set_device(int device) { HALO_CUDA_CHECK(cudaSetDevice(device)); }

void synchronize(int device) {
  DeviceGuard g(device);
  HALO_CUDA_CHECK(cudaDeviceSynchronize());
}

Event::Event(int device, bool timing) : device_(device) {
  DeviceGuard g(device);
  HALO_CUDA_CHECK(cudaEventCreateWithFlags(&handle_, timing ? cudaEventDefault : cudaEventDisableTiming));
}
Event::~Event() {
  if (handle_) {
    DeviceGuard g(device_);
    cudaEventDestroy(handle_);
  }
}
void Event::record(StreamHandle stream) {
  DeviceGuard g(device_);
  HALO_CUDA_CHECK(cudaEventRecord(handle_, stream));
}
void Event::synchronize() const { HALO_CUDA_CHECK(cudaEventSynchronize(handle_)); }
void Event::block(StreamHandle stream) const {
  DeviceGuard g(device_);
  HALO_CUDA_CHECK(cudaStreamWaitEvent(stream, handle_, 0));
}

namespace detail {

// The host and device cells of a graph's replay values, allocated at begin_capture (pinned
// host memory, so the captured copies read the cells when the replay runs), and the event
// that tells when the last replay is done with them.
struct ReplayCells {
  static constexpr size_t kMax = 256;
  int device = 0;
  uint64_t* host = nullptr;
  uint64_t* dev = nullptr;
  cudaEvent_t done = nullptr;
  bool replayed = false;
  std::vector<std::function<uint64_t()>> values;

  explicit ReplayCells(int d) : device(d) {
    HALO_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&host), kMax * sizeof(uint64_t)));
    HALO_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&dev), kMax * sizeof(uint64_t)));
    HALO_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
  }
  ~ReplayCells() {  // never throws; the graph's destructor set the device
    if (done) {
      cudaEventSynchronize(done);
      cudaEventDestroy(done);
    }
    if (dev) cudaFree(dev);
    if (host) cudaFreeHost(host);
    (void)cudaGetLastError();
  }
};

}  // namespace detail

namespace {
// The graph capturing on this thread, if any (one capture per thread at a time).
thread_local Graph* t_capturing = nullptr;
}  // namespace

double elapsed_seconds(const Event& from, const Event& to) {
  float ms = 0;
  HALO_CUDA_CHECK(cudaEventElapsedTime(&ms, from.handle(), to.handle()));
  return double(ms) / 1e3;
}

Graph::Graph(int device) : device_(device) {}

Graph::~Graph() {
  // Never throws (a DeviceGuard could, at teardown): the device is set by hand.
  int previous = -1;
  if (cudaGetDevice(&previous) == cudaSuccess && previous != device_) cudaSetDevice(device_);
  (void)cudaGetLastError();
  if (stream_) {  // destroyed mid-capture (an exception): end it and drop what was recorded
    cudaGraph_t partial = nullptr;
    if (cudaStreamEndCapture(stream_, &partial) == cudaSuccess && partial) cudaGraphDestroy(partial);
    (void)cudaGetLastError();
    detail::end_capture_pool(device_);
  }
  if (t_capturing == this) t_capturing = nullptr;
  cells_.reset();  // waits for a replay still reading them
  if (exec_) cudaGraphExecDestroy(exec_);
  if (pool_) detail::release_pool(device_, pool_);
  if (previous >= 0 && previous != device_) cudaSetDevice(previous);
  (void)cudaGetLastError();
}

void Graph::begin_capture(const Stream& stream) {
  HALO_CHECK(!exec_ && !stream_ && !pool_,
             "cuda::Graph: captured already, or a capture failed (one capture per graph; make a new one)");
  HALO_CHECK(stream.device() == device_, "cuda::Graph on cuda:", device_, " cannot capture a stream of cuda:", stream.device());
  HALO_CHECK(stream.handle() != nullptr, "cuda::Graph: the legacy default stream cannot be captured; use a cuda::Stream");
  HALO_CHECK(current_stream(device_) == stream.handle(), "cuda::Graph: the stream to capture is not this thread's current "
             "stream on cuda:", device_, ", so the work would run instead of being captured; make it current with a "
             "cuda::StreamGuard first");
  DeviceGuard g(device_);
  cells_ = std::make_unique<detail::ReplayCells>(device_);  // cudaMalloc is not allowed inside the capture
  pool_ = detail::begin_capture_pool(device_, stream.handle());
  // Thread-local mode: other threads (loaders allocating pinned memory, say) may go on with
  // calls that a global capture would forbid them.
  const cudaError_t err = cudaStreamBeginCapture(stream.handle(), cudaStreamCaptureModeThreadLocal);
  if (err != cudaSuccess) {
    detail::end_capture_pool(device_);
    HALO_CUDA_CHECK(err);
  }
  stream_ = stream.handle();
  t_capturing = this;
}

void Graph::end_capture() {
  HALO_CHECK(stream_, "cuda::Graph::end_capture without begin_capture");
  DeviceGuard g(device_);
  cudaGraph_t graph = nullptr;
  const cudaError_t err = cudaStreamEndCapture(stream_, &graph);
  stream_ = nullptr;
  t_capturing = nullptr;
  detail::end_capture_pool(device_);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    throw Error(str("cuda::Graph: the capture failed (", cudaGetErrorString(err),
                    "): the captured work synchronised with the host (a value read back, a copy to "
                    "the host, a cuDNN algorithm search) or used another stream; run such work "
                    "before the capture"));
  }
  const cudaError_t counted = cudaGraphGetNodes(graph, nullptr, &nodes_);
  const cudaError_t inst = counted == cudaSuccess ? cudaGraphInstantiate(&exec_, graph, 0) : counted;
  cudaGraphDestroy(graph);
  HALO_CUDA_CHECK(inst);
}

void Graph::replay(const Stream& stream) {
  HALO_CHECK(exec_, "cuda::Graph::replay before a capture");
  DeviceGuard g(device_);
  detail::ReplayCells* c = cells_.get();
  const bool values = c && !c->values.empty();
  if (values) {
    // The previous replay's copies may not have read their cells yet.
    if (c->replayed) HALO_CUDA_CHECK(cudaEventSynchronize(c->done));
    for (size_t i = 0; i < c->values.size(); ++i) c->host[i] = c->values[i]();
  }
  HALO_CUDA_CHECK(cudaGraphLaunch(exec_, stream.handle()));
  if (values) {
    HALO_CUDA_CHECK(cudaEventRecord(c->done, stream.handle()));
    c->replayed = true;
  }
}

const uint64_t* replay_value(int device, std::function<uint64_t()> value) {
  Graph* g = t_capturing;
  if (!g || g->device_ != device) return nullptr;
  detail::ReplayCells& c = *g->cells_;
  HALO_CHECK(c.values.size() < detail::ReplayCells::kMax, "cuda::replay_value: a graph holds at most ",
             detail::ReplayCells::kMax, " replay values");
  const size_t i = c.values.size();
  DeviceGuard dg(device);
  // On the thread's current stream, where the kernel that reads the value is queued (the
  // captured stream, or one that joined the capture).
  HALO_CUDA_CHECK(
      cudaMemcpyAsync(c.dev + i, c.host + i, sizeof(uint64_t), cudaMemcpyHostToDevice, current_stream(device)));
  c.values.push_back(std::move(value));
  return c.dev + i;
}

size_t Graph::pool_bytes() const { return pool_ ? pool_->bytes() : 0; }

}  // namespace halo::cuda
