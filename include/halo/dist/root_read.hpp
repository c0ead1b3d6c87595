// Start-up reads done once per job instead of once per rank: rank `root` of a communicator
// runs the read (a configuration file, a directory listing, a layout probe, a data set's
// index) and MPI_Bcast sends the result to the others, so N ranks do not ask the file
// system's metadata server N times for the same thing (docs/hpc-guide.md). A read that throws
// on the root throws the same error type and message on every rank, so no rank is left
// waiting in the broadcast.
#pragma once

#include <mpi.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "halo/data/format.hpp"

namespace halo::data {
class H5Dataset;
}

namespace halo::dist {

/// Runs `read` on `root` only and returns its text on every rank of `comm` (a collective).
std::string read_on_root(MPI_Comm comm, const std::function<std::string()>& read, int root = 0);

/// Packs a list of strings into one (length-prefixed) and back, for read_on_root.
std::string pack_strings(const std::vector<std::string>& v);
std::vector<std::string> unpack_strings(const std::string& s);

/// The data set whose files and layout `list` returns, opened on `root` alone: root runs `list`
/// and builds the H5Dataset from the files (its first file's shapes, every packed shard's
/// samples, the minmax statistics); the other ranks receive the files, the layout and the
/// dataset's index() and build the same dataset from them, opening no file until they read a
/// sample. An error on root is thrown on every rank, as by read_on_root. Collective.
std::shared_ptr<data::H5Dataset> open_dataset_on_root(
    MPI_Comm comm, const std::function<std::pair<std::vector<std::string>, data::Layout>()>& list,
    data::Driver driver = data::Driver::automatic, int root = 0);

}  // namespace halo::dist
