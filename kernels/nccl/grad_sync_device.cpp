// The device path of GradientSynchronizer on NCCL (see grad_sync_device.hpp).
#include "nccl/grad_sync_device.hpp"

#include <cuda_runtime.h>

#include <algorithm>

#include "cuda/check.hpp"
#include "cuda/nccl_pack.hpp"
#include "halo/cuda/runtime.hpp"
#include "halo/util/timer.hpp"
#include "halo/util/error.hpp"

namespace halo::dist::detail {

struct DeviceGradSync::Impl {
  std::shared_ptr<NcclCommunicator> nccl;
  int device = 0;
  std::vector<DeviceBucket> buckets;
  std::vector<void*> wire;            // per bucket, device memory
  std::vector<cudaEvent_t> ready;     // per bucket: its gradients are written (compute stream)
  std::vector<cudaEvent_t> done;      // per bucket: averaged gradients are back (comm stream)
  std::vector<double> started;        // host time of each launch
};

DeviceGradSync::DeviceGradSync(std::shared_ptr<NcclCommunicator> nccl, int device, std::vector<DeviceBucket> buckets)
    : impl_(std::make_unique<Impl>()) {
  impl_->nccl = std::move(nccl);
  impl_->device = device;
  impl_->buckets = std::move(buckets);
  const size_t n = impl_->buckets.size();
  cuda::DeviceGuard g(device);
  impl_->wire.assign(n, nullptr);
  impl_->ready.assign(n, nullptr);
  impl_->done.assign(n, nullptr);
  impl_->started.assign(n, 0.0);
  for (size_t b = 0; b < n; ++b) {
    const DeviceBucket& bk = impl_->buckets[b];
    const size_t bytes = bk.elements * (bk.compressed ? 2 : size_of(bk.dtype));
    HALO_CUDA_CHECK(cudaMalloc(&impl_->wire[b], bytes > 0 ? bytes : 1));
    HALO_CUDA_CHECK(cudaEventCreateWithFlags(&impl_->ready[b], cudaEventDisableTiming));
    HALO_CUDA_CHECK(cudaEventCreateWithFlags(&impl_->done[b], cudaEventDisableTiming));
  }
}

DeviceGradSync::~DeviceGradSync() {
  if (!impl_) return;
  int previous = 0;
  cudaGetDevice(&previous);
  cudaSetDevice(impl_->device);
  // The wire buffers may still be read by queued NCCL work (unless the comm was aborted).
  if (!impl_->nccl->aborted()) cudaStreamSynchronize(static_cast<cudaStream_t>(impl_->nccl->stream()));
  for (size_t b = 0; b < impl_->wire.size(); ++b) {
    if (impl_->wire[b]) cudaFree(impl_->wire[b]);
    if (impl_->ready[b]) cudaEventDestroy(impl_->ready[b]);
    if (impl_->done[b]) cudaEventDestroy(impl_->done[b]);
  }
  cudaSetDevice(previous);
}

void DeviceGradSync::launch(int bi, double scale) {
  Impl& s = *impl_;
  const DeviceBucket& b = s.buckets[size_t(bi)];
  cuda::DeviceGuard g(s.device);
  auto comm = static_cast<cudaStream_t>(s.nccl->stream());
  HALO_CUDA_CHECK(cudaEventRecord(s.ready[size_t(bi)], cuda::current_stream(s.device)));
  HALO_CUDA_CHECK(cudaStreamWaitEvent(comm, s.ready[size_t(bi)], 0));
  s.started[size_t(bi)] = now_seconds();

  const size_t es = size_of(b.dtype);
  auto* wire = static_cast<unsigned char*>(s.wire[size_t(bi)]);
  for (size_t i = 0; i < b.params.size(); ++i) {
    const Tensor& g = b.params[i]->grad;
    HALO_CHECK_T(DistError, g.defined() && g.device() == Device::cuda(s.device) && g.is_dense() && g.dtype() == b.dtype,
                 "GradientSynchronizer: gradient of '", b.params[i]->name, "' must be a dense ", name(b.dtype),
                 " tensor on cuda:", s.device, " (", b.what, ")");
    if (b.compressed)
      cuda::nccl_pack::f32_to_bf16(g.data<float>(), reinterpret_cast<uint16_t*>(wire) + b.offsets[i], g.numel(), comm);
    else
      HALO_CUDA_CHECK(cudaMemcpyAsync(wire + b.offsets[i] * es, g.raw_data(), g.nbytes(), cudaMemcpyDeviceToDevice, comm));
  }
  s.nccl->allreduce_sum_async(wire, b.elements, b.compressed ? DType::bf16 : b.dtype);
  if (b.compressed) {
    for (size_t i = 0; i < b.params.size(); ++i) {
      Tensor& g = b.params[i]->grad;
      cuda::nccl_pack::bf16_to_f32_scaled(reinterpret_cast<const uint16_t*>(wire) + b.offsets[i], g.data<float>(),
                                          g.numel(), float(scale), comm);
    }
  } else {
    // Scale the flat buffer once (one launch per bucket), then copy the slices back.
    if (scale != 1.0) {
      if (b.dtype == DType::f32) cuda::nccl_pack::scale_f32(reinterpret_cast<float*>(wire), int64_t(b.elements), float(scale), comm);
      else cuda::nccl_pack::scale_f64(reinterpret_cast<double*>(wire), int64_t(b.elements), scale, comm);
    }
    for (size_t i = 0; i < b.params.size(); ++i) {
      Tensor& g = b.params[i]->grad;
      HALO_CUDA_CHECK(cudaMemcpyAsync(g.raw_data(), wire + b.offsets[i] * es, g.nbytes(), cudaMemcpyDeviceToDevice, comm));
    }
  }
  HALO_CUDA_CHECK(cudaEventRecord(s.done[size_t(bi)], comm));
}

void DeviceGradSync::finish(int count, const std::function<void(int)>& on_done) {
  Impl& s = *impl_;
  cuda::DeviceGuard g(s.device);
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  HALO_CUDA_CHECK(cudaStreamIsCapturing(cuda::current_stream(s.device), &capture));
  if (capture != cudaStreamCaptureStatusNone) {
    // Recorded into a CUDA graph: nothing has run, so nothing to watch; joining the
    // communication stream back into the captured one is all there is to do.
    if (count > 0)
      HALO_CUDA_CHECK(cudaStreamWaitEvent(cuda::current_stream(s.device), s.done[size_t(count - 1)], 0));
    for (int b = 0; b < count; ++b) on_done(b);
    return;
  }
  // A bucket launched early waits behind the rest of backward on the compute stream: the
  // stall clock starts when the host starts waiting, not at the launch, so a long backward
  // is not mistaken for a hung collective.
  const double waiting_since = now_seconds();
  for (int b = 0; b < count; ++b) {
    s.nccl->wait_event(s.done[size_t(b)], s.buckets[size_t(b)].what, std::max(s.started[size_t(b)], waiting_since));
    on_done(b);
  }
  // The comm stream is in order: its last event covers every bucket. Queue the wait even
  // though the host saw it complete, so the ordering does not rest on the host wait.
  if (count > 0)
    HALO_CUDA_CHECK(cudaStreamWaitEvent(cuda::current_stream(s.device), s.done[size_t(count - 1)], 0));
}

void DeviceGradSync::watch_current_stream(const std::string& what) {
  Impl& s = *impl_;
  cuda::DeviceGuard g(s.device);
  cuda::Event done(s.device);
  done.record(cuda::current_stream(s.device));
  s.nccl->wait_event(done.handle(), what, now_seconds());
}

}  // namespace halo::dist::detail
