// Start-up reads done once per job instead of once per rank: rank `root` of a communicator
// runs the read (a configuration file, a directory listing, a layout probe) and MPI_Bcast
// sends the result to the others, so N ranks do not ask the file system's metadata server
// N times for the same thing (docs/hpc-guide.md). A read that throws on the root throws the
// same error type and message on every rank, so no rank is left waiting in the broadcast.
#pragma once

#include <mpi.h>

#include <functional>
#include <string>
#include <vector>

namespace halo::dist {

/// Runs `read` on `root` only and returns its text on every rank of `comm` (a collective).
std::string read_on_root(MPI_Comm comm, const std::function<std::string()>& read, int root = 0);

/// Packs a list of strings into one (length-prefixed) and back, for read_on_root.
std::string pack_strings(const std::vector<std::string>& v);
std::vector<std::string> unpack_strings(const std::string& s);

}  // namespace halo::dist
