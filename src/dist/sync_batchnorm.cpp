#include "halo/dist/sync_batchnorm.hpp"

#include <memory>

#include "halo/util/error.hpp"

namespace halo::dist {

StatsReducer make_stats_reducer(const Communicator& comm, int group_size) {
  HALO_CHECK_T(ConfigError, group_size >= 0, "make_stats_reducer: group size must be >= 0, got ", group_size);
  if (group_size == 0 || group_size >= comm.size()) {
    Communicator whole = comm;
    return [whole](double* values, size_t n) { whole.allreduce_sum(values, n, "synchronised BatchNorm statistics"); };
  }
  // Groups of consecutive ranks: on most launchers consecutive ranks share a node, so the
  // statistics exchange stays inside it.
  auto group = std::make_shared<Communicator>(comm.split(comm.rank() / group_size, comm.rank()));
  return [group](double* values, size_t n) {
    group->allreduce_sum(values, n, "synchronised BatchNorm statistics (group)");
  };
}

}  // namespace halo::dist
