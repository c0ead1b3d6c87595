#include "halo/dist/root_read.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>

#include "halo/data/dataset.hpp"
#include "halo/util/error.hpp"

namespace halo::dist {

namespace {

// What the root sends first: the outcome (0: the text follows; otherwise the error kind,
// and the message follows) and the length of what follows.
enum Kind : int64_t { ok = 0, config_error, io_error, dist_error, other_error };

[[noreturn]] void rethrow(int64_t kind, const std::string& msg) {
  switch (kind) {
    case config_error: throw ConfigError(msg);
    case io_error: throw IOError(msg);
    case dist_error: throw DistError(msg);
    default: throw Error(msg);
  }
}

void bcast_bytes(MPI_Comm comm, std::string& s, int root) {
  // MPI counts are int: send in chunks so a long listing of many files still fits.
  const size_t chunk = size_t(1) << 30;
  for (size_t off = 0; off < s.size(); off += chunk) {
    const int n = int(std::min(chunk, s.size() - off));
    HALO_CHECK_T(DistError, MPI_Bcast(&s[off], n, MPI_CHAR, root, comm) == MPI_SUCCESS,
                 "read_on_root: MPI_Bcast failed");
  }
}

}  // namespace

std::string read_on_root(MPI_Comm comm, const std::function<std::string()>& read, int root) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  std::string text;
  int64_t head[2] = {ok, 0};
  if (rank == root) {
    try {
      text = read();
    } catch (const ConfigError& e) {
      head[0] = config_error, text = e.what();
    } catch (const IOError& e) {
      head[0] = io_error, text = e.what();
    } catch (const DistError& e) {
      head[0] = dist_error, text = e.what();
    } catch (const std::exception& e) {
      head[0] = other_error, text = e.what();
    }
    head[1] = int64_t(text.size());
  }
  HALO_CHECK_T(DistError, MPI_Bcast(head, 2, MPI_INT64_T, root, comm) == MPI_SUCCESS,
               "read_on_root: MPI_Bcast failed");
  text.resize(size_t(head[1]));
  bcast_bytes(comm, text, root);
  if (head[0] != ok) rethrow(head[0], text);
  return text;
}

std::string pack_strings(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) {
    const uint64_t n = s.size();
    out.append(reinterpret_cast<const char*>(&n), sizeof n);
    out += s;
  }
  return out;
}

std::vector<std::string> unpack_strings(const std::string& s) {
  std::vector<std::string> out;
  size_t off = 0;
  while (off < s.size()) {
    uint64_t n = 0;
    HALO_CHECK_T(DistError, off + sizeof n <= s.size(), "unpack_strings: truncated message");
    std::memcpy(&n, s.data() + off, sizeof n);
    off += sizeof n;
    HALO_CHECK_T(DistError, n <= s.size() - off, "unpack_strings: truncated message");
    out.emplace_back(s.substr(off, size_t(n)));
    off += size_t(n);
  }
  return out;
}

std::shared_ptr<data::H5Dataset> open_dataset_on_root(
    MPI_Comm comm, const std::function<std::pair<std::vector<std::string>, data::Layout>()>& list,
    data::Driver driver, int root) {
  std::shared_ptr<data::H5Dataset> ds;  // root's, built from the files
  const std::vector<std::string> msg = unpack_strings(read_on_root(
      comm,
      [&] {
        auto found = list();
        ds = std::make_shared<data::H5Dataset>(found.first, found.second, driver);
        std::vector<std::string> out{data::encode_layout(found.second), ds->index()};
        out.insert(out.end(), found.first.begin(), found.first.end());
        return pack_strings(out);
      },
      root));
  if (ds) return ds;
  HALO_CHECK_T(DistError, msg.size() >= 3, "open_dataset_on_root: malformed broadcast");
  return std::make_shared<data::H5Dataset>(std::vector<std::string>(msg.begin() + 2, msg.end()),
                                           data::decode_layout(msg[0]), msg[1], driver);
}

}  // namespace halo::dist
