// NCCL communicator for gradients that live on GPUs. It is bootstrapped from a Halo
// Communicator (MPI): rank 0 creates the NCCL unique id, MPI_Bcast sends it to every rank,
// and every rank calls ncclCommInitRank on the GPU its node-local rank selects
// (local_rank % visible GPUs, or the device given). NCCL work runs on a communication
// stream the communicator owns, so it overlaps compute queued on other streams.
//
//   halo::dist::Communicator comm(MPI_COMM_WORLD);
//   halo::dist::NcclCommunicator nccl(comm);    // collective over comm
//
// A NCCL collective that fails or hangs does not return an error to the host by itself: a
// failed peer leaves the kernels of the others spinning. So every wait on NCCL work polls
// ncclCommGetAsyncError and the completion event, and after the Communicator's stall
// timeout (or at once on an error) aborts the NCCL communicator (ncclCommAbort) and throws
// DistError naming the rank, the GPU, the operation and what to check. The communicator is
// unusable after that; the job should end.
//
// This header compiles in every build. Without CUDA and NCCL the constructor throws
// "this build has no NCCL" (nccl_available() says so beforehand).
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "halo/dist/communicator.hpp"
#include "halo/tensor/tensor.hpp"

namespace halo::dist {

/// Whether this build of Halo has NCCL (a CUDA build that found NCCL 2); says nothing about GPUs present.
bool nccl_available();

/// What went wrong with a NCCL operation, for the watchdog's message.
struct NcclFailure {
  int rank = -1;
  int size = 0;
  int device = -1;
  std::string operation;   ///< e.g. "gradient allreduce bucket 2 (3 params, 1.2 MB: ...)"
  std::string error;       ///< NCCL's error string; empty for a stall
  double waited_s = 0;
  double timeout_s = 0;
};
/// The message the NCCL watchdog throws with; a pure function so it is tested without a GPU.
std::string format_nccl_failure(const NcclFailure& f);

/// NCCL runs one rank per GPU (two ranks on one GPU stop ncclCommInitRank with "Duplicate GPU
/// detected"). Given each rank's GPU as "host/PCI bus id (cuda:N)", indexed by rank, returns ""
/// when no two ranks share one, else the message the NcclCommunicator throws with: the first
/// ranks that share a GPU, the host, and how to launch instead. Pure, so tested without a GPU.
std::string describe_shared_gpus(const std::vector<std::string>& gpu_of_rank);

class NcclCommunicator {
 public:
  /// Collective over `comm`. `device` < 0 picks comm.local_rank() % (visible GPUs).
  explicit NcclCommunicator(const Communicator& comm, int device = -1);
  ~NcclCommunicator();
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const;
  int size() const;
  /// The GPU this rank's NCCL communicator uses.
  int device() const;
  const Communicator& mpi() const;
  /// The communication stream (a cudaStream_t).
  void* stream() const;

  /// Queues a sum-allreduce in place of `count` elements of `dtype` (f32, f64, bf16, f16)
  /// at device pointer `buffer` on the communication stream; returns at once.
  void allreduce_sum_async(void* buffer, size_t count, DType dtype);
  /// Sum-allreduce of a dense tensor on this communicator's GPU, in place; returns when it
  /// is complete (watched: see wait_event). `what` names it in a failure report.
  void allreduce_sum(Tensor& t, const std::string& what);

  /// Blocks the host until `event` (a cudaEvent_t recorded after NCCL work) has completed,
  /// polling ncclCommGetAsyncError; on an error, or when it waited longer than the
  /// Communicator's stall timeout since `started` (halo::now_seconds()), aborts the NCCL
  /// communicator and throws DistError (format_nccl_failure) naming `what`.
  void wait_event(void* event, const std::string& what, double started);
  /// Throws as above when NCCL reports an asynchronous error now; returns otherwise.
  void check_async_error(const std::string& what);
  /// True once the communicator was aborted (by the watchdog or abort()).
  bool aborted() const;
  /// ncclCommAbort: frees the communicator without waiting for peers.
  void abort();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace halo::dist
