// What every build has of include/halo/dist/nccl.hpp: the watchdog's report. The communicator
// itself is kernels/nccl/nccl_communicator.cpp (builds with NCCL) or its stand-in in
// kernels/no_nccl.
#include "halo/dist/nccl.hpp"

#include <sstream>

#include "halo/util/error.hpp"

namespace halo::dist {

std::string format_nccl_failure(const NcclFailure& f) {
  std::ostringstream os;
  os << "halo NCCL watchdog: '" << f.operation << "' on rank " << f.rank << " of " << f.size << " (cuda:" << f.device
     << ") ";
  if (f.error.empty())
    os << "has waited " << f.waited_s << " s without completing (limit " << f.timeout_s << " s)";
  else
    os << "failed after " << f.waited_s << " s with NCCL error: " << f.error;
  os << "; the NCCL communicator was aborted (ncclCommAbort). A rank that stopped calling collectives, a crashed "
        "peer or a network fault stops every rank: look for the first error in the job's output, rerun with "
        "NCCL_DEBUG=WARN (or INFO) to see NCCL's view, check NCCL_SOCKET_IFNAME and the interconnect";
  if (f.error.empty()) os << ", or raise the limit (dist.stall_timeout_s in the drivers, CommunicatorOptions::stall_timeout_s in code) if this operation is legitimately slow";
  return os.str();
}


}  // namespace halo::dist
