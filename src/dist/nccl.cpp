// What every build has of include/halo/dist/nccl.hpp: the watchdog's report. The communicator
// itself is kernels/nccl/nccl_communicator.cpp (builds with NCCL) or its stand-in in
// kernels/no_nccl.
#include "halo/dist/nccl.hpp"

#include <map>
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

std::string describe_shared_gpus(const std::vector<std::string>& gpu_of_rank) {
  // The GPU is its host and bus id; "(cuda:N)" only says how the rank numbered it.
  auto physical = [](const std::string& g) { return g.substr(0, g.find(" (")); };
  std::map<std::string, int> first_rank;
  for (int r = 0; r < int(gpu_of_rank.size()); ++r) {
    const std::string gpu = physical(gpu_of_rank[size_t(r)]);
    if (gpu.empty()) continue;  // a rank without a GPU is reported on its own
    auto [it, fresh] = first_rank.emplace(gpu, r);
    if (fresh) continue;
    int sharing = 0;
    for (const auto& g : gpu_of_rank) sharing += physical(g) == gpu;
    const size_t slash = gpu.find('/');
    return str("NcclCommunicator: ranks ", it->second, " and ", r, " (", sharing, " ranks in all) share the GPU ",
               gpu.substr(slash + 1), " on ", gpu.substr(0, slash), " (", gpu_of_rank[size_t(it->second)], " and ",
               gpu_of_rank[size_t(r)], "), and NCCL needs one GPU per rank: launch as many ranks per node as it "
               "has GPUs (srun --ntasks-per-node=<GPUs> --gpus-per-task=1, or mpiexec --map-by ppr:<GPUs>:node), "
               "or train on the CPU (training.device=cpu)");
  }
  return "";
}

}  // namespace halo::dist
