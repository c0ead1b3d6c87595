// Streams, guards and availability (include/halo/cuda/runtime.hpp).
#include "halo/cuda/runtime.hpp"

#include <cuda_runtime.h>

#include <unordered_map>

#include "cuda/check.hpp"

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

void synchronize(int device) {
  DeviceGuard g(device);
  HALO_CUDA_CHECK(cudaDeviceSynchronize());
}

Event::Event(int device) : device_(device) {
  DeviceGuard g(device);
  HALO_CUDA_CHECK(cudaEventCreateWithFlags(&handle_, cudaEventDisableTiming));
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

}  // namespace halo::cuda
