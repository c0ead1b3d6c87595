// The CUDA runtime as Halo uses it: whether a GPU is there, streams, a device guard, and
// pinned host buffers for copies that overlap compute.
//
// Device memory comes from a stream-ordered caching allocator (allocator_for(Device::cuda(i))):
// a block freed while the thread's current stream is S may be handed out again at once for
// work on S, and for work on another stream only after that stream waits for S's work up to
// the free. So code that allocates, launches and frees on one stream never synchronises.
//
// Every build sees the same declarations. Without CUDA, available() is false, device_count()
// is 0 and the rest throws halo::Error "this build of Halo has no CUDA support (rebuild with
// -DHALO_ENABLE_CUDA=ON)", so callers test for a GPU without their own #if.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "halo/tensor/tensor.hpp"

struct CUstream_st;  // cudaStream_t without including the CUDA headers
struct CUevent_st;   // cudaEvent_t
struct CUgraphExec_st;  // cudaGraphExec_t

namespace halo {
class GraphPool;
}
namespace halo::cuda::detail {
struct ReplayCells;
}

namespace halo::cuda {

/// True when the CUDA driver is usable and at least one GPU is visible. Never throws.
bool available();
/// Number of visible GPUs (0 when none or no driver).
int device_count();

using StreamHandle = CUstream_st*;

/// An owned, non-blocking CUDA stream on one device.
class Stream {
 public:
  explicit Stream(int device = 0);
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  StreamHandle handle() const { return handle_; }
  int device() const { return device_; }
  /// Blocks the host until the stream's work so far is done.
  void synchronize() const;

 private:
  StreamHandle handle_ = nullptr;
  int device_ = 0;
};

/// The stream the calling thread launches work on for `device`: the one set by the innermost
/// StreamGuard, else the device's legacy default stream (nullptr).
StreamHandle current_stream(int device = 0);

/// Makes `stream` the calling thread's current stream for its device while in scope.
class StreamGuard {
 public:
  explicit StreamGuard(const Stream& stream);
  ~StreamGuard();
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;

 private:
  int device_;
  StreamHandle previous_;
};

/// Makes `device` the calling thread's current device while in scope.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_;
};

/// Blocks the host until all work on `device` is done.
void synchronize(int device = 0);
/// Makes `device` the calling thread's current CUDA device (cudaSetDevice): later contexts,
/// pinned host buffers and code without a DeviceGuard use it. A rank that trains on one GPU
/// of several sets it once, before anything touches the GPUs.
void set_device(int device);

using EventHandle = CUevent_st*;

/// A CUDA event on one device (timing disabled): marks a point in a stream's work, so other
/// streams or the host can wait for it without waiting for the whole stream.
class Event {
 public:
  /// `timing`: the event also records when the GPU reached it (for elapsed_seconds).
  explicit Event(int device = 0, bool timing = false);
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  EventHandle handle() const { return handle_; }
  /// Marks the work queued on `stream` so far.
  void record(StreamHandle stream);
  /// Blocks the host until the marked work is done.
  void synchronize() const;
  /// Makes later work on `stream` wait (on the device) for the marked work.
  void block(StreamHandle stream) const;

 private:
  EventHandle handle_ = nullptr;
  int device_ = 0;
};

/// Seconds of GPU time from `from` to `to`: two events of one device made with timing on,
/// both recorded and complete (synchronize() on the later one first).
double elapsed_seconds(const Event& from, const Event& to);

/// A CUDA graph: the work the calling thread queues on one stream between begin_capture()
/// and end_capture(), replayed as a single launch (no per-kernel launch cost, no host in the
/// loop). The captured work must not synchronise with the host (no item(), no copies to
/// the host, no cuDNN algorithm search: run the work once eagerly first), and it replays
/// with the values its kernels had at capture: the same input and output buffers (copy new
/// inputs into the captured input tensor before replay()) and the same scalars (a learning
/// rate passed by value is frozen; a value that must change goes through replay_value()). Every device block the capture used is
/// the graph's until the graph is destroyed (GraphPool): tensors that live on after the
/// capture (its outputs) hold memory that each replay rewrites.
class Graph {
 public:
  explicit Graph(int device = 0);
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  /// Waits for the device, then records what this thread queues on `stream` instead of
  /// running it. `stream` must be the thread's current stream (a StreamGuard), and the same
  /// thread must end the capture. Throws when a capture is already running on the device or
  /// this graph was captured (or failed to) before.
  void begin_capture(const Stream& stream);
  /// Ends the capture and instantiates the graph; throws naming the CUDA error when the
  /// captured work did something a capture cannot hold (a host synchronisation).
  void end_capture();
  /// Runs the captured work on `stream`, asynchronously. A graph with replay values (below)
  /// first waits for its previous replay to finish, then writes their new values.
  void replay(const Stream& stream);
  bool captured() const { return exec_ != nullptr; }
  /// Nodes of the captured graph (kernels, copies, memsets, ...).
  size_t nodes() const { return nodes_; }
  /// Device bytes the graph keeps (its pool).
  size_t pool_bytes() const;

 private:
  friend const uint64_t* replay_value(int device, std::function<uint64_t()> value);
  int device_ = 0;
  CUstream_st* stream_ = nullptr;  // the stream being captured
  CUgraphExec_st* exec_ = nullptr;
  size_t nodes_ = 0;
  std::shared_ptr<GraphPool> pool_;
  std::unique_ptr<detail::ReplayCells> cells_;  // the replay values' host and device cells
};

/// A value captured work must read afresh at every replay, where eager work would pass it by
/// value (a dropout layer's mask key, which changes every step). While this thread captures
/// work on `device` into a Graph: queues, on the capturing stream, a copy of a host cell into
/// device memory, and returns the device address that the captured kernels read the value
/// from; the graph calls `value` before each replay() (in the order registered) and writes the
/// result into the cell, so the copy brings it to the device when the replay runs. `value`
/// must stay callable as long as the graph lives. Returns null when this thread captures
/// nothing on `device`: eager work passes the value directly.
const uint64_t* replay_value(int device, std::function<uint64_t()> value);

/// Caching allocator of page-locked host memory: copies from it to a GPU run asynchronously
/// and at full PCIe/NVLink speed. A freed block is reused only once the work queued on the
/// freeing thread's current stream (device 0) at the time of the free has finished.
Allocator& pinned_host_allocator();

/// A CPU tensor in pinned memory, for staging batches that are copied to a GPU asynchronously.
Tensor pinned_empty(const Shape& shape, DType dtype = DType::f32, MemoryFormat fmt = MemoryFormat::contiguous);

/// Queues a copy of `src` into `dst` (same shape, dtype and strides, dense) on `stream` and
/// returns at once. Host memory must be pinned for the copy to overlap compute, and both
/// tensors must stay alive (and the source unchanged) until the stream has passed the copy.
void copy_async(Tensor& dst, const Tensor& src, const Stream& stream);

}  // namespace halo::cuda
