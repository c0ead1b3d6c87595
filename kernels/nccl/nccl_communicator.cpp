// NcclCommunicator (include/halo/dist/nccl.hpp) on NCCL: built when CMake found NCCL 2 for a
// CUDA build; kernels/no_nccl stands in otherwise.
#include "halo/dist/nccl.hpp"

#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include <unistd.h>

#include "cuda/check.hpp"
#include "halo/cuda/runtime.hpp"
#include "halo/util/error.hpp"
#include "halo/util/timer.hpp"

namespace halo::dist {

bool nccl_available() { return true; }

namespace {

std::string nccl_error(ncclResult_t r, ncclComm_t comm) {
  std::string s = ncclGetErrorString(r);
  const char* last = ncclGetLastError(comm);
  if (last && *last) s += str(" (", last, ")");
  return s;
}

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::f32: return ncclFloat32;
    case DType::f64: return ncclFloat64;
    case DType::bf16: return ncclBfloat16;
    case DType::f16: return ncclFloat16;
    default: throw DistError(str("NcclCommunicator: cannot allreduce dtype ", name(t), "; use f32, f64, bf16 or f16"));
  }
}

// What rank 0 broadcasts: whether it got an id, and the id. One message, so a failure on
// rank 0 is reported on every rank instead of leaving the others in MPI_Bcast.
struct Bootstrap {
  int32_t ok = 0;
  char error[200] = {};
  ncclUniqueId id;
};

// One rank's GPU as every rank sees it (fixed size, for MPI_Allgather).
struct GpuName {
  char text[128] = {};
};

}  // namespace

struct NcclCommunicator::Impl {
  Communicator comm;
  ncclComm_t nccl = nullptr;
  cudaStream_t stream = nullptr;
  int device = 0;
  bool aborted = false;

  [[noreturn]] void fail(const std::string& what, const std::string& error, double waited) {
    NcclFailure f;
    f.rank = comm.rank();
    f.size = comm.size();
    f.device = device;
    f.operation = what;
    f.error = error;
    f.waited_s = waited;
    f.timeout_s = comm.watchdog().timeout();
    abort_comm();
    throw DistError(format_nccl_failure(f));
  }
  void abort_comm() {
    if (nccl && !aborted) ncclCommAbort(nccl);
    aborted = true;
  }
};

#define HALO_NCCL_CHECK(call, ncomm)                                                                     \
  do {                                                                                                 \
    ncclResult_t halo_nr_ = (call);                                                                    \
    if (halo_nr_ != ncclSuccess && halo_nr_ != ncclInProgress)                                         \
      throw DistError(str("NCCL error in ", #call, " on rank ", impl_->comm.rank(), ": ",              \
                          nccl_error(halo_nr_, ncomm)));                                                \
  } while (0)

NcclCommunicator::NcclCommunicator(const Communicator& comm, int device) : impl_(std::make_unique<Impl>()) {
  impl_->comm = comm;
  const int rank = comm.rank();
  const int gpus = cuda::device_count();
  // Every rank takes part in the broadcast below before any of them may throw, so a rank
  // without a GPU does not leave the others waiting.
  std::string local_error;
  if (gpus == 0)
    local_error = str("NcclCommunicator: rank ", rank, " sees no CUDA GPU; check CUDA_VISIBLE_DEVICES and the "
                      "job's GPU binding (e.g. srun --gpus-per-task=1)");
  else if (device >= gpus)
    local_error = str("NcclCommunicator: rank ", rank, " asked for cuda:", device, " but sees ", gpus, " GPU(s)");
  impl_->device = device >= 0 ? device : (gpus > 0 ? comm.local_rank() % gpus : 0);
  // This rank's GPU, by host and PCI bus id: the index alone does not tell two ranks with
  // different CUDA_VISIBLE_DEVICES apart.
  GpuName mine;
  if (local_error.empty()) {
    char bus[32] = "?";
    cudaDeviceGetPCIBusId(bus, int(sizeof bus), impl_->device);
    char host[64] = "?";
    ::gethostname(host, sizeof host - 1);
    std::snprintf(mine.text, sizeof mine.text, "%s/%s (cuda:%d)", host, bus, impl_->device);
  }

  Bootstrap boot;
  if (rank == 0) {
    ncclResult_t r = ncclGetUniqueId(&boot.id);
    boot.ok = r == ncclSuccess;
    if (!boot.ok) std::snprintf(boot.error, sizeof boot.error, "%s", ncclGetErrorString(r));
  }
  {
    Watchdog::Guard g(comm.watchdog(), "NCCL bootstrap: MPI_Bcast of the NCCL unique id");
    MPI_Bcast(&boot, int(sizeof boot), MPI_BYTE, 0, comm.comm());
  }
  HALO_CHECK_T(DistError, boot.ok, "NcclCommunicator: ncclGetUniqueId failed on rank 0: ", boot.error);
  // Agree on whether every rank can go on (ncclCommInitRank blocks until all ranks join).
  int bad = local_error.empty() ? 0 : 1;
  {
    Watchdog::Guard g(comm.watchdog(), "NCCL bootstrap: GPU check");
    MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT, MPI_SUM, comm.comm());
  }
  HALO_CHECK_T(DistError, local_error.empty(), local_error);
  HALO_CHECK_T(DistError, bad == 0, "NcclCommunicator: ", bad, " rank(s) cannot use a GPU (see their messages)");
  // Two ranks on one GPU would stop ncclCommInitRank with "Duplicate GPU detected" (or, on
  // some versions, hang it): every rank learns every rank's GPU and all throw the same error.
  std::vector<GpuName> all(size_t(comm.size()));
  {
    Watchdog::Guard g(comm.watchdog(), "NCCL bootstrap: one GPU per rank");
    MPI_Allgather(&mine, int(sizeof mine), MPI_BYTE, all.data(), int(sizeof mine), MPI_BYTE, comm.comm());
  }
  std::vector<std::string> gpu_of_rank;
  for (const auto& n : all) gpu_of_rank.emplace_back(n.text);
  const std::string shared = describe_shared_gpus(gpu_of_rank);
  HALO_CHECK_T(DistError, shared.empty(), shared);

  cuda::DeviceGuard dg(impl_->device);
  HALO_CUDA_CHECK(cudaStreamCreateWithFlags(&impl_->stream, cudaStreamNonBlocking));
  Watchdog::Guard g(comm.watchdog(), "NCCL bootstrap: ncclCommInitRank");
  HALO_NCCL_CHECK(ncclCommInitRank(&impl_->nccl, comm.size(), boot.id, rank), nullptr);
}

NcclCommunicator::~NcclCommunicator() {
  if (!impl_) return;
  int previous = 0;
  cudaGetDevice(&previous);
  cudaSetDevice(impl_->device);
  if (impl_->nccl && !impl_->aborted) {
    // Queued collectives finish first: destroying a communicator under them is undefined.
    if (cudaStreamSynchronize(impl_->stream) == cudaSuccess) ncclCommDestroy(impl_->nccl);
    else ncclCommAbort(impl_->nccl);
  }
  if (impl_->stream) cudaStreamDestroy(impl_->stream);
  cudaSetDevice(previous);
}

int NcclCommunicator::rank() const { return impl_->comm.rank(); }
int NcclCommunicator::size() const { return impl_->comm.size(); }
int NcclCommunicator::device() const { return impl_->device; }
const Communicator& NcclCommunicator::mpi() const { return impl_->comm; }
void* NcclCommunicator::stream() const { return impl_->stream; }
bool NcclCommunicator::aborted() const { return impl_->aborted; }
void NcclCommunicator::abort() { impl_->abort_comm(); }

void NcclCommunicator::allreduce_sum_async(void* buffer, size_t count, DType dtype) {
  HALO_CHECK_T(DistError, !impl_->aborted, "NcclCommunicator on rank ", rank(),
               ": the communicator was aborted after an earlier failure; end the job");
  cuda::DeviceGuard dg(impl_->device);
  HALO_NCCL_CHECK(ncclAllReduce(buffer, buffer, count, nccl_type(dtype), ncclSum, impl_->nccl, impl_->stream),
                  impl_->nccl);
}

void NcclCommunicator::allreduce_sum(Tensor& t, const std::string& what) {
  HALO_CHECK_T(DistError, t.device() == Device::cuda(impl_->device) && t.is_dense(), "NcclCommunicator::allreduce_sum '",
               what, "': needs a dense tensor on cuda:", impl_->device, ", got one on ", t.device().str());
  cuda::DeviceGuard dg(impl_->device);
  // The data may still be being written on the caller's stream: the communication stream
  // waits for it, and the caller's stream for the result.
  cudaStream_t caller = cuda::current_stream(impl_->device);
  cudaEvent_t ready = nullptr, done = nullptr;
  HALO_CUDA_CHECK(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming));
  HALO_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
  struct Events {
    cudaEvent_t a, b;
    ~Events() { cudaEventDestroy(a); cudaEventDestroy(b); }
  } owner{ready, done};
  HALO_CUDA_CHECK(cudaEventRecord(ready, caller));
  HALO_CUDA_CHECK(cudaStreamWaitEvent(impl_->stream, ready, 0));
  const double start = now_seconds();
  allreduce_sum_async(t.raw_data(), size_t(t.numel()), t.dtype());
  HALO_CUDA_CHECK(cudaEventRecord(done, impl_->stream));
  wait_event(done, what, start);
  HALO_CUDA_CHECK(cudaStreamWaitEvent(caller, done, 0));
}

void NcclCommunicator::check_async_error(const std::string& what) {
  if (impl_->aborted) return;
  ncclResult_t async = ncclSuccess;
  ncclResult_t r = ncclCommGetAsyncError(impl_->nccl, &async);
  if (r != ncclSuccess) impl_->fail(what, nccl_error(r, impl_->nccl), 0);
  if (async != ncclSuccess && async != ncclInProgress) impl_->fail(what, nccl_error(async, impl_->nccl), 0);
}

void NcclCommunicator::wait_event(void* event, const std::string& what, double started) {
  HALO_CHECK_T(DistError, !impl_->aborted, "NcclCommunicator on rank ", rank(), ": waiting on '", what,
               "' after the communicator was aborted; end the job");
  auto ev = static_cast<cudaEvent_t>(event);
  for (int spins = 0;; ++spins) {
    cudaError_t e = cudaEventQuery(ev);
    if (e == cudaSuccess) return;
    const double waited = now_seconds() - started;
    if (e != cudaErrorNotReady) {
      (void)cudaGetLastError();
      impl_->fail(what, str("CUDA error while waiting: ", cudaGetErrorString(e)), waited);
    }
    ncclResult_t async = ncclSuccess;
    ncclCommGetAsyncError(impl_->nccl, &async);
    if (async != ncclSuccess && async != ncclInProgress) impl_->fail(what, nccl_error(async, impl_->nccl), waited);
    if (waited > impl_->comm.watchdog().timeout()) impl_->fail(what, "", waited);
    // Spin briefly (most buckets finish within microseconds of the wait), then sleep so a
    // long wait does not take a core from the data loader.
    if (spins < 1000) std::this_thread::yield();
    else std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

}  // namespace halo::dist
