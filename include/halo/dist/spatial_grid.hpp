// SpatialGrid: the ranks of a launch arranged as (data-parallel replicas) x (spatial grid).
//
//   dist::Communicator world(MPI_COMM_WORLD);
//   auto grid = std::make_shared<dist::SpatialGrid>(world, std::array<int, 3>{2, 2, 1});
//   // 8 ranks: 2 replicas, each splitting every sample over a 2x2x1 grid (D and H halved).
//
// Consecutive ranks form one spatial group (launchers place consecutive ranks on one node,
// so halo exchanges stay inside it); rank r holds spatial position r % S of replica r / S.
// spatial() links the ranks of one group (halo exchange, gradient and statistics sums over
// the volume); data() links the ranks at the same position in every replica (the
// data-parallel gradient average, the loader's sharding, validation metrics).
#pragma once
#include <array>
#include <memory>

#include "halo/dist/communicator.hpp"
#include "halo/nn/spatial.hpp"

namespace halo::dist {

class SpatialGrid final : public nn::SpatialGroup {
 public:
  /// Collective over `world`; its size must be a multiple of parts[0]*parts[1]*parts[2].
  SpatialGrid(const Communicator& world, std::array<int, 3> parts);

  std::array<int, 3> parts() const override { return parts_; }
  std::array<int, 3> coords() const override { return coords_; }
  void exchange(int axis, const std::vector<Bytes>& send, const std::vector<Bytes>& recv) override;
  void allreduce_sum(Tensor& t) override;
  bool concurrent_exchange() const override { return spatial_.thread_multiple(); }

  const Communicator& world() const { return world_; }
  const Communicator& spatial() const { return spatial_; }
  const Communicator& data() const { return data_; }

 private:
  int rank_at(std::array<int, 3> coords) const;
  Communicator world_, spatial_, data_;
  std::array<int, 3> parts_, coords_;
};

/// Parses "2x2x1" (or "2,2,1", or one number for D alone) into grid parts; throws ConfigError.
std::array<int, 3> parse_spatial_parts(const std::string& text);

}  // namespace halo::dist
