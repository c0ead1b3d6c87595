// NcclCommunicator in builds without NCCL (no CUDA, or CMake did not find NCCL 2): the same
// declarations, a constructor that says what to do, and nccl_available() false.
#include "halo/dist/nccl.hpp"
#include "halo/util/error.hpp"

namespace halo::dist {

bool nccl_available() { return false; }

struct NcclCommunicator::Impl {};

NcclCommunicator::NcclCommunicator(const Communicator&, int) {
  throw DistError(
      "NcclCommunicator: this build has no NCCL (built without CUDA, or CMake did not find NCCL 2: set NCCL_ROOT "
      "and reconfigure with -DHALO_ENABLE_CUDA=ON); keep parameters on the CPU to synchronise over MPI");
}
NcclCommunicator::~NcclCommunicator() = default;
[[noreturn]] static void no_nccl() { throw DistError("NcclCommunicator: this build has no NCCL"); }
int NcclCommunicator::rank() const { no_nccl(); }
int NcclCommunicator::size() const { no_nccl(); }
int NcclCommunicator::device() const { no_nccl(); }
const Communicator& NcclCommunicator::mpi() const { no_nccl(); }
void* NcclCommunicator::stream() const { no_nccl(); }
void NcclCommunicator::allreduce_sum_async(void*, size_t, DType) { no_nccl(); }
void NcclCommunicator::allreduce_sum(Tensor&, const std::string&) { no_nccl(); }
void NcclCommunicator::wait_event(void*, const std::string&, double) { no_nccl(); }
void NcclCommunicator::check_async_error(const std::string&) { no_nccl(); }
bool NcclCommunicator::aborted() const { no_nccl(); }
void NcclCommunicator::abort() { no_nccl(); }

}  // namespace halo::dist
