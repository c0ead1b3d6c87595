// This process's rank and the number of ranks of MPI_COMM_WORLD, and a temporary path every
// rank agrees on, for the MPI tests.
#pragma once
#include <mpi.h>
#include <unistd.h>

#include <filesystem>
#include <string>

namespace halo::test {

inline int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

inline int world_size() {
  int s = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &s);
  return s;
}

/// "<tmp>/<stem>-<rank 0's pid>": the same on every rank (rank 0's pid, broadcast), and
/// another for each run of the test, so concurrent runs do not share files.
inline std::string shared_temp_path(const std::string& stem) {
  long pid = world_rank() == 0 ? long(::getpid()) : 0;
  MPI_Bcast(&pid, 1, MPI_LONG, 0, MPI_COMM_WORLD);
  return (std::filesystem::temp_directory_path() / (stem + "-" + std::to_string(pid))).string();
}

}  // namespace halo::test
