#include "halo/dist/spatial_grid.hpp"

#include <climits>
#include <sstream>

#include "halo/util/error.hpp"

namespace halo::dist {

namespace {

int checked_grid_size(const Communicator& world, std::array<int, 3> p) {
  for (int a = 0; a < 3; ++a)
    HALO_CHECK_T(ConfigError, p[size_t(a)] >= 1, "spatial grid: ", p[0], "x", p[1], "x", p[2],
                 " needs at least one rank per axis");
  const int s = p[0] * p[1] * p[2];
  HALO_CHECK_T(ConfigError, world.size() % s == 0, "spatial grid ", p[0], "x", p[1], "x", p[2], " (", s,
               " ranks per sample) does not divide the ", world.size(), " ranks of the launch");
  return s;
}

}  // namespace

SpatialGrid::SpatialGrid(const Communicator& world, std::array<int, 3> parts)
    : world_(world),
      spatial_(world.split(world.rank() / checked_grid_size(world, parts), world.rank())),
      data_(world.split(world.rank() % checked_grid_size(world, parts), world.rank())),
      parts_(parts) {
  const int s = spatial_.rank();
  coords_ = {s / (parts[1] * parts[2]), (s / parts[2]) % parts[1], s % parts[2]};
}

int SpatialGrid::rank_at(std::array<int, 3> c) const { return (c[0] * parts_[1] + c[1]) * parts_[2] + c[2]; }

void SpatialGrid::exchange(int axis, const std::vector<Bytes>& send, const std::vector<Bytes>& recv) {
  const int P = parts_[size_t(axis)];
  HALO_CHECK(int(send.size()) == P && int(recv.size()) == P, "SpatialGrid::exchange: ", send.size(), "/",
             recv.size(), " buffers for ", P, " ranks along axis ", axis);
  const int self = coords_[size_t(axis)];
  // Sizes checked before anything is posted: a throw must not leave requests behind.
  for (int q = 0; q < P; ++q)
    for (const Bytes& b : {send[size_t(q)], recv[size_t(q)]})
      HALO_CHECK(q == self || b.size <= size_t(INT_MAX), "spatial halo exchange: a piece of ", b.size,
                 " bytes is over MPI's count limit; split the volume over more ranks");
  std::vector<MPI_Request> reqs;
  reqs.reserve(size_t(2 * P));
  const int tag = 0x5a00 + axis;
  Watchdog::Guard g(spatial_.watchdog(), "spatial halo exchange along axis " + std::to_string(axis));
  auto peer = [&](int q) {
    auto c = coords_;
    c[size_t(axis)] = q;
    return rank_at(c);
  };
  for (int q = 0; q < P; ++q)  // receives first, so that no send waits for its match
    if (q != self && recv[size_t(q)].size > 0) {
      reqs.emplace_back();
      MPI_Irecv(recv[size_t(q)].data, int(recv[size_t(q)].size), MPI_BYTE, peer(q), tag, spatial_.comm(), &reqs.back());
    }
  for (int q = 0; q < P; ++q)
    if (q != self && send[size_t(q)].size > 0) {
      reqs.emplace_back();
      MPI_Isend(send[size_t(q)].data, int(send[size_t(q)].size), MPI_BYTE, peer(q), tag, spatial_.comm(), &reqs.back());
    }
  MPI_Waitall(int(reqs.size()), reqs.data(), MPI_STATUSES_IGNORE);
}

void SpatialGrid::allreduce_sum(Tensor& t) {
  if (spatial_.size() == 1) return;
  HALO_CHECK(t.is_dense(), "SpatialGrid::allreduce_sum: ", t.str(), " is not dense");
  Tensor h = t.device().is_cpu() ? t : t.to(Device::cpu());
  MPI_Datatype type = MPI_DATATYPE_NULL;
  if (h.dtype() == DType::f32) type = MPI_FLOAT;
  else if (h.dtype() == DType::f64) type = MPI_DOUBLE;
  HALO_CHECK(type != MPI_DATATYPE_NULL, "SpatialGrid::allreduce_sum: ", t.str(), " is not f32 or f64");
  HALO_CHECK(h.numel() <= INT_MAX, "SpatialGrid::allreduce_sum: ", t.str(), " is over MPI's count limit");
  {
    Watchdog::Guard g(spatial_.watchdog(), "spatial gradient sum");
    MPI_Allreduce(MPI_IN_PLACE, h.raw_data(), int(h.numel()), type, MPI_SUM, spatial_.comm());
  }
  if (!t.device().is_cpu()) t.copy_(h);
}

std::array<int, 3> parse_spatial_parts(const std::string& text) {
  std::array<int, 3> p{1, 1, 1};
  std::string t = text;
  for (char& ch : t)
    if (ch == 'x' || ch == ',' || ch == '[' || ch == ']') ch = ' ';
  std::istringstream in(t);
  int n = 0, v = 0;
  while (in >> v) {
    HALO_CHECK_T(ConfigError, n < 3 && v >= 1, "spatial grid '", text,
                 "': expected up to three positive counts (D x H x W), e.g. 2x2x1");
    p[size_t(n++)] = v;
  }
  HALO_CHECK_T(ConfigError, n >= 1 && in.eof(), "spatial grid '", text,
               "': expected up to three positive counts (D x H x W), e.g. 2x2x1");
  return p;
}

}  // namespace halo::dist
