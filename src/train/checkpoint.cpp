#include "halo/train/checkpoint.hpp"

#include <fcntl.h>
#include <hdf5.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <exception>
#include <filesystem>
#include <optional>
#include <vector>

#include "data/h5.hpp"
#include "train/checkpoint_stats.hpp"
#include "halo/util/error.hpp"
#include "halo/util/log.hpp"

namespace halo::train {

namespace fs = std::filesystem;

namespace {

constexpr const char* kChecksumAttr = "halo_xxh64";
// A temporary file nobody has written to for this long is stale even when its pid is alive
// here: it was left by a process on another node (the pid says nothing about this host).
constexpr double kStaleTempSeconds = 600;

hid_t h5_type(DType t) {
  switch (t) {
    case DType::f32: return H5T_NATIVE_FLOAT;
    case DType::f64: return H5T_NATIVE_DOUBLE;
    case DType::i32: return H5T_NATIVE_INT32;
    case DType::i64: return H5T_NATIVE_INT64;
    case DType::u8: return H5T_NATIVE_UINT8;
    case DType::bf16:
    case DType::f16: return H5T_NATIVE_UINT16;  // raw bits; the dtype is kept in an attribute
  }
  return H5T_NATIVE_FLOAT;
}

struct H5Handle {
  hid_t id;
  herr_t (*close)(hid_t);
  ~H5Handle() {
    if (id >= 0) close(id);
  }
};

// ---- why an operation failed -------------------------------------------------------------

// HDF5's file driver records the OS's reason in its error stack ("..., errno = 28, error
// message = 'No space left on device'"); that survives HDF5's later internal calls, which
// errno does not. Without one, the innermost HDF5 message is the best description.
struct ErrorWalk {
  std::string os, innermost;
};

herr_t error_walk_cb(unsigned, const H5E_error2_t* e, void* data) {
  auto* w = static_cast<ErrorWalk*>(data);
  if (!e || !e->desc) return 0;
  const std::string desc = e->desc;
  const std::string key = "error message = '";
  size_t p = desc.find(key);
  if (p != std::string::npos && w->os.empty()) {
    p += key.size();
    w->os = desc.substr(p, desc.find('\'', p) - p);
  }
  w->innermost = desc;  // walked outermost first: the last one is the innermost
  return 0;
}

// The reason of a failed HDF5 call, to append to a message. Call it right after the failing
// call: any further HDF5 call (a handle's close) clears the error stack.
std::string h5_reason() {
  const int err = errno;
  ErrorWalk w;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, error_walk_cb, &w);
  if (!w.os.empty()) return ": " + w.os;
  if (err != 0) return ": " + std::string(std::strerror(err));
  if (!w.innermost.empty()) return ": HDF5: " + w.innermost;
  return "";
}

// The reason of a failed system call.
std::string os_reason() { return ": " + std::string(std::strerror(errno)); }

// ---- checksum ----------------------------------------------------------------------------

// XXH64 (Yann Collet's xxHash, 64-bit variant, seed 0), written out here so checkpoints need
// no new dependency; any xxhash implementation (python-xxhash: xxhash.xxh64(buf).intdigest())
// reproduces the stored value. Inputs are read as little-endian words, as on every platform
// Halo runs on.
constexpr uint64_t P1 = 11400714785074694791ULL, P2 = 14029467366897019727ULL, P3 = 1609587929392839161ULL,
                   P4 = 9650029242287828579ULL, P5 = 2870177450012600261ULL;

inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
inline uint64_t read64(const unsigned char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline uint32_t read32(const unsigned char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline uint64_t xxh_round(uint64_t acc, uint64_t input) {
  acc += input * P2;
  acc = rotl(acc, 31);
  return acc * P1;
}
inline uint64_t xxh_merge(uint64_t acc, uint64_t v) {
  acc ^= xxh_round(0, v);
  return acc * P1 + P4;
}

// ---- writing -----------------------------------------------------------------------------

// The temporary file of one write: removed unless the write got as far as renaming it, so a
// failed write (a full disk) leaves nothing behind to fill the disk further.
struct TempFile {
  std::string path;
  bool committed = false;
  ~TempFile() {
    if (!committed) ::unlink(path.c_str());
  }
};

void write_checksum(hid_t ds, const std::string& name, const void* bytes, size_t n, const std::string& file) {
  const uint64_t h = checksum64(bytes, n);
  H5Handle space{H5Screate(H5S_SCALAR), H5Sclose};
  H5Handle a{H5Acreate2(ds, kChecksumAttr, H5T_NATIVE_UINT64, space.id, H5P_DEFAULT, H5P_DEFAULT), H5Aclose};
  HALO_CHECK_T(IOError, a.id >= 0 && H5Awrite(a.id, H5T_NATIVE_UINT64, &h) >= 0, "checkpoint '", file,
               "': cannot write the checksum of dataset '", name, "'", h5_reason());
}

void write_dataset(hid_t file, const std::string& name, hid_t type, const std::vector<hsize_t>& dims,
                   const void* data, size_t bytes, const std::string& path) {
  H5Handle lcpl{H5Pcreate(H5P_LINK_CREATE), H5Pclose};
  H5Pset_create_intermediate_group(lcpl.id, 1);
  H5Handle space{dims.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple(int(dims.size()), dims.data(), nullptr),
                 H5Sclose};
  H5Handle ds{H5Dcreate2(file, name.c_str(), type, space.id, lcpl.id, H5P_DEFAULT, H5P_DEFAULT), H5Dclose};
  HALO_CHECK_T(IOError, ds.id >= 0, "checkpoint '", path, "': cannot create dataset '", name, "'", h5_reason());
  HALO_CHECK_T(IOError, H5Dwrite(ds.id, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0, "checkpoint '", path,
               "': cannot write dataset '", name, "'", h5_reason());
  write_checksum(ds.id, name, data, bytes, path);
}

void write_string_attr(hid_t obj, const char* attr, const std::string& value, const std::string& path) {
  H5Handle type{H5Tcopy(H5T_C_S1), H5Tclose};
  H5Tset_size(type.id, value.size() + 1);
  H5Handle space{H5Screate(H5S_SCALAR), H5Sclose};
  H5Handle a{H5Acreate2(obj, attr, type.id, space.id, H5P_DEFAULT, H5P_DEFAULT), H5Aclose};
  HALO_CHECK_T(IOError, a.id >= 0 && H5Awrite(a.id, type.id, value.c_str()) >= 0, "checkpoint '", path,
               "': cannot write attribute '", attr, "'", h5_reason());
}

// fsync of a file, or of a directory so that a rename in it survives a crash of the node.
// Some file systems cannot sync a directory (EINVAL): there is nothing more to do there.
void sync_path(const std::string& p, bool directory, const std::string& what) {
  int fd = ::open(p.c_str(), directory ? (O_RDONLY | O_DIRECTORY | O_CLOEXEC) : (O_RDWR | O_CLOEXEC));
  HALO_CHECK_T(IOError, fd >= 0, "cannot open ", what, " '", p, "' to sync it", os_reason());
  if (::fsync(fd) != 0 && !(directory && (errno == EINVAL || errno == ENOTSUP))) {
    const std::string reason = os_reason();
    ::close(fd);
    throw IOError("cannot sync " + what + " '" + p + "' to disk" + reason);
  }
  HALO_CHECK_T(IOError, ::close(fd) == 0, "cannot close ", what, " '", p, "'", os_reason());
}

std::string parent_dir(const std::string& path) {
  fs::path d = fs::path(path).parent_path();
  return d.empty() ? "." : d.string();
}

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// meta/global_step of a checkpoint, without reading the rest (it names the file when kept).
std::optional<int64_t> read_global_step(const std::string& path) {
  H5Handle file{H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose};
  if (file.id < 0 || H5Lexists(file.id, "meta", H5P_DEFAULT) <= 0 ||
      H5Lexists(file.id, "meta/global_step", H5P_DEFAULT) <= 0)
    return std::nullopt;
  H5Handle ds{H5Dopen2(file.id, "meta/global_step", H5P_DEFAULT), H5Dclose};
  int64_t step = 0;
  if (ds.id < 0 || H5Dread(ds.id, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &step) < 0) return std::nullopt;
  return step;
}

// The kept older checkpoints of `path` (kept_checkpoint_name), with their steps.
std::vector<std::pair<int64_t, std::string>> kept_checkpoints(const std::string& path) {
  const fs::path p(path);
  const std::string prefix = p.stem().string() + ".", suffix = p.extension().string();
  std::vector<std::pair<int64_t, std::string>> out;
  std::error_code ec;
  for (fs::directory_iterator it(parent_dir(path), ec), end; !ec && it != end; it.increment(ec)) {
    const std::string n = it->path().filename().string();
    if (n.size() <= prefix.size() + suffix.size() || n.compare(0, prefix.size(), prefix) != 0 ||
        n.compare(n.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    const std::string mid = n.substr(prefix.size(), n.size() - prefix.size() - suffix.size());
    if (all_digits(mid) && mid.size() < 19) out.emplace_back(std::stoll(mid), kept_checkpoint_name(path, std::stoll(mid)));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  return out;
}

// Before `path` is replaced by a checkpoint at `new_step`, keep the current one under its
// step's name. A hard link keeps `path` in place until the rename replaces it, so there is
// no moment without a checkpoint at `path`; where links are not supported, a rename does
// it (a kill in between leaves the kept one, which --resume finds).
void keep_current(const std::string& path, int64_t new_step) {
  if (::access(path.c_str(), F_OK) != 0) return;
  const std::optional<int64_t> step = read_global_step(path);
  if (!step) {
    log::warn("checkpoint '", path, "' has no readable meta/global_step: it is replaced, not kept");
    return;
  }
  // At or past the new step it belongs to a run that was restarted from an earlier point.
  if (*step >= new_step) return;
  const std::string kept = kept_checkpoint_name(path, *step);
  ::unlink(kept.c_str());
  if (::link(path.c_str(), kept.c_str()) == 0) return;
  HALO_CHECK_T(IOError, std::rename(path.c_str(), kept.c_str()) == 0, "cannot keep checkpoint '", path, "' as '",
               kept, "'", os_reason());
}

// Keeps the newest keep-1 older checkpoints below `new_step`; those at or past it are from
// the abandoned part of a run restarted from an earlier checkpoint.
void prune_kept(const std::string& path, int keep, int64_t new_step) {
  int kept = 0;
  for (const auto& [step, name] : kept_checkpoints(path)) {
    if (step < new_step && kept < keep - 1) {
      ++kept;
      continue;
    }
    if (::unlink(name.c_str()) != 0 && errno != ENOENT)
      log::warn("cannot remove the old checkpoint '", name, "'", os_reason());
  }
}

// Halo reports HDF5 failures as IOError naming the file; HDF5's own error stack print
// would only bury that message, so it is silenced while a checkpoint call runs.
class QuietHdf5 {
 public:
  QuietHdf5() {
    H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~QuietHdf5() { H5Eset_auto2(H5E_DEFAULT, func_, data_); }

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
};

// ---- reading -----------------------------------------------------------------------------

std::string read_string(hid_t obj, bool is_attr, const std::string& name, const std::string& path) {
  // The buffer below holds one string: an array of them would overrun it.
  H5Handle space{is_attr ? H5Aget_space(obj) : H5Dget_space(obj), H5Sclose};
  HALO_CHECK_T(IOError, H5Sget_simple_extent_npoints(space.id) == 1, "checkpoint '", path, "': '", name,
               "' holds ", H5Sget_simple_extent_npoints(space.id), " strings, expected one");
  H5Handle type{is_attr ? H5Aget_type(obj) : H5Dget_type(obj), H5Tclose};
  size_t n = H5Tget_size(type.id);
  std::vector<char> buf(n + 1, 0);
  H5Handle mem{H5Tcopy(H5T_C_S1), H5Tclose};
  H5Tset_size(mem.id, n);
  herr_t rc = is_attr ? H5Aread(obj, mem.id, buf.data()) : H5Dread(obj, mem.id, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data());
  HALO_CHECK_T(IOError, rc >= 0, "checkpoint '", path, "': cannot read '", name, "'", h5_reason());
  return std::string(buf.data());
}

// A dataset whose data no longer matches its checksum is corrupt; one without a checksum
// was written before checksums existed and is taken as it is.
void verify_checksum(hid_t ds, const std::string& name, const void* bytes, size_t n, const std::string& path) {
  if (H5Aexists(ds, kChecksumAttr) <= 0) return;
  H5Handle a{H5Aopen(ds, kChecksumAttr, H5P_DEFAULT), H5Aclose};
  uint64_t stored = 0;
  HALO_CHECK_T(IOError, a.id >= 0 && H5Aread(a.id, H5T_NATIVE_UINT64, &stored) >= 0, "checkpoint '", path,
               "': cannot read the checksum of dataset '", name, "'", h5_reason());
  const uint64_t actual = checksum64(bytes, n);
  if (stored != actual) {
    char buf[80];
    std::snprintf(buf, sizeof buf, "stored %016llx, data %016llx", (unsigned long long)stored,
                  (unsigned long long)actual);
    throw IOError("checkpoint '" + path + "' is corrupt: dataset '" + name + "' does not match its checksum (" +
                  buf + "); resume from an older checkpoint (checkpoint.keep) or start afresh");
  }
}

struct Visit {
  CheckpointData* out;
  std::string path;
  std::exception_ptr error;  // an exception must not unwind through HDF5's C frames
};

void read_dataset(hid_t file, const std::string& n, Visit* v) {
  const std::string& path = v->path;
  H5Handle ds{H5Dopen2(file, n.c_str(), H5P_DEFAULT), H5Dclose};
  HALO_CHECK_T(IOError, ds.id >= 0, "checkpoint '", path, "': cannot open dataset '", n, "'", h5_reason());
  H5Handle type{H5Dget_type(ds.id), H5Tclose};
  H5Handle space{H5Dget_space(ds.id), H5Sclose};
  int rank = H5Sget_simple_extent_ndims(space.id);
  std::vector<hsize_t> dims(size_t(std::max(rank, 0)));
  if (rank > 0) H5Sget_simple_extent_dims(space.id, dims.data(), nullptr);
  auto read = [&](hid_t mem, void* buf) {
    HALO_CHECK_T(IOError, H5Dread(ds.id, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0, "checkpoint '", path,
                 "': cannot read dataset '", n, "'", h5_reason());
  };
  if (n.rfind("meta/", 0) == 0) {
    std::string key = n.substr(5);
    HALO_CHECK_T(IOError, H5Sget_simple_extent_npoints(space.id) == 1, "checkpoint ", v->path, ": dataset '", n,
                 "' holds ", H5Sget_simple_extent_npoints(space.id), " values, expected one");
    H5T_class_t cls = H5Tget_class(type.id);
    if (cls == H5T_STRING) {
      std::string s = read_string(ds.id, false, n, path);
      verify_checksum(ds.id, n, s.data(), s.size(), path);
      v->out->strings[key] = s;
    } else if (cls == H5T_INTEGER) {
      int64_t x = 0;
      read(H5T_NATIVE_INT64, &x);
      verify_checksum(ds.id, n, &x, sizeof x, path);
      v->out->integers[key] = x;
    } else {
      double x = 0;
      read(H5T_NATIVE_DOUBLE, &x);
      verify_checksum(ds.id, n, &x, sizeof x, path);
      v->out->reals[key] = x;
    }
    return;
  }
  Shape shape(dims.begin(), dims.end());
  DType dt;
  if (H5Aexists(ds.id, "halo_dtype") > 0) {
    H5Handle a{H5Aopen(ds.id, "halo_dtype", H5P_DEFAULT), H5Aclose};
    std::string s = read_string(a.id, true, n + "/halo_dtype", path);
    dt = s == "bf16" ? DType::bf16 : DType::f16;
  } else if (H5Tget_class(type.id) == H5T_FLOAT) {
    dt = H5Tget_size(type.id) == 8 ? DType::f64 : DType::f32;
  } else if (H5Tget_class(type.id) == H5T_INTEGER) {
    size_t sz = H5Tget_size(type.id);
    dt = sz == 8 ? DType::i64 : sz == 4 ? DType::i32 : DType::u8;
  } else {
    throw IOError("checkpoint '" + path + "': dataset '" + n + "' has an unsupported type");
  }
  Tensor t = Tensor::empty(shape, dt);
  read(h5_type(dt), t.raw_data());
  verify_checksum(ds.id, n, t.raw_data(), t.nbytes(), path);
  v->out->tensors[n] = t;
}

// Link iteration with the API-version-neutral names, so this compiles against HDF5 1.10
// (Debian) and 1.12+ (Spack) alike; the object type is asked of the opened object.
herr_t visit_cb(hid_t file, const char* name, const H5L_info_t*, void* op) {
  auto* v = static_cast<Visit*>(op);
  try {
    {
      H5Handle obj{H5Oopen(file, name, H5P_DEFAULT), H5Oclose};
      if (obj.id < 0) throw IOError("checkpoint '" + v->path + "': cannot open '" + name + "'" + h5_reason());
      if (H5Iget_type(obj.id) != H5I_DATASET) return 0;
    }
    read_dataset(file, name, v);
    return 0;
  } catch (...) {
    v->error = std::current_exception();
    return -1;
  }
}

}  // namespace

uint64_t checksum64(const void* data, size_t len) {
  const auto* p = static_cast<const unsigned char*>(data);
  const unsigned char* const end = p + len;
  uint64_t h;
  if (len >= 32) {
    uint64_t v1 = P1 + P2, v2 = P2, v3 = 0, v4 = 0 - P1;
    const unsigned char* const limit = end - 32;
    do {
      v1 = xxh_round(v1, read64(p));
      v2 = xxh_round(v2, read64(p + 8));
      v3 = xxh_round(v3, read64(p + 16));
      v4 = xxh_round(v4, read64(p + 24));
      p += 32;
    } while (p <= limit);
    h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
    h = xxh_merge(h, v1);
    h = xxh_merge(h, v2);
    h = xxh_merge(h, v3);
    h = xxh_merge(h, v4);
  } else {
    h = P5;
  }
  h += uint64_t(len);
  for (; p + 8 <= end; p += 8) {
    h ^= xxh_round(0, read64(p));
    h = rotl(h, 27) * P1 + P4;
  }
  if (p + 4 <= end) {
    h ^= uint64_t(read32(p)) * P1;
    h = rotl(h, 23) * P2 + P3;
    p += 4;
  }
  for (; p < end; ++p) {
    h ^= uint64_t(*p) * P5;
    h = rotl(h, 11) * P1;
  }
  h ^= h >> 33;
  h *= P2;
  h ^= h >> 29;
  h *= P3;
  h ^= h >> 32;
  return h;
}

std::string kept_checkpoint_name(const std::string& path, int64_t step) {
  const fs::path p(path);
  return (p.parent_path() / (p.stem().string() + "." + std::to_string(step) + p.extension().string())).string();
}

std::vector<std::string> list_checkpoints(const std::string& path) {
  // Debian's (parallel) HDF5 is not thread-safe: while a checkpoint is written or read, the
  // loaders' background readers (which hold the same lock for each HDF5 call) must wait.
  std::lock_guard<std::recursive_mutex> hdf5_lock(data::hdf5_mutex());
  std::vector<std::string> out;
  if (::access(path.c_str(), F_OK) == 0) out.push_back(path);
  for (const auto& [step, name] : kept_checkpoints(path)) out.push_back(name);
  return out;
}

int remove_stale_checkpoint_temps(const std::string& path) {
  const std::string prefix = fs::path(path).filename().string() + ".tmp.";
  const std::string dir = parent_dir(path);
  int removed = 0;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string n = it->path().filename().string();
    if (n.compare(0, prefix.size(), prefix) != 0 || !all_digits(n.substr(prefix.size())) ||
        n.size() - prefix.size() > 9)
      continue;
    const pid_t pid = pid_t(std::stol(n.substr(prefix.size())));
    const std::string file = it->path().string();
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0) continue;  // gone meanwhile
    const bool ours = pid == ::getpid();
    const bool dead = ::kill(pid, 0) != 0 && errno == ESRCH;
    const bool old = std::difftime(std::time(nullptr), st.st_mtime) > kStaleTempSeconds;
    if (!ours && !dead && !old) continue;  // perhaps a write in progress
    if (::unlink(file.c_str()) == 0) {
      ++removed;
      log::warn("removed the temporary checkpoint file '", file, "' left by an interrupted write (process ", pid,
                ours ? ", this one" : dead ? ", no longer running" : ", untouched for ten minutes", ")");
    } else if (errno != ENOENT) {
      log::warn("cannot remove the stale temporary checkpoint file '", file, "'", os_reason());
    }
  }
  return removed;
}

void save_checkpoint(const std::string& path, const CheckpointData& data, int keep) {
  // Debian's (parallel) HDF5 is not thread-safe: while a checkpoint is written or read, the
  // loaders' background readers (which hold the same lock for each HDF5 call) must wait.
  std::lock_guard<std::recursive_mutex> hdf5_lock(data::hdf5_mutex());
  HALO_CHECK_T(IOError, keep >= 1, "checkpoint '", path, "': keep must be at least 1 (got ", keep, ")");
  int64_t step = 0;
  if (keep > 1) {
    auto it = data.integers.find("global_step");
    HALO_CHECK_T(IOError, it != data.integers.end(), "checkpoint '", path,
                 "': keeping several checkpoints needs integers[\"global_step\"] to name them");
    step = it->second;
  }
  QuietHdf5 quiet;
  // First, so the space of temporary files left by killed writes is free for this one.
  remove_stale_checkpoint_temps(path);
  TempFile tmp{path + ".tmp." + std::to_string(::getpid())};
  {
    H5Handle file{H5Fcreate(tmp.path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose};
    HALO_CHECK_T(IOError, file.id >= 0, "cannot create checkpoint file '", tmp.path, "'", h5_reason(),
                 " (does the directory exist and is it writable?)");
    for (const auto& [name, t] : data.tensors) {
      HALO_CHECK_T(IOError, t.defined(), "checkpoint '", path, "': tensor '", name, "' is undefined");
      Tensor c = t.to(Device::cpu()).contiguous();
      std::vector<hsize_t> dims(c.shape().begin(), c.shape().end());
      write_dataset(file.id, name, h5_type(c.dtype()), dims, c.raw_data(), c.nbytes(), path);
      if (c.dtype() == DType::bf16 || c.dtype() == DType::f16) {
        H5Handle ds{H5Dopen2(file.id, name.c_str(), H5P_DEFAULT), H5Dclose};
        write_string_attr(ds.id, "halo_dtype", halo::name(c.dtype()), path);
      }
    }
    for (const auto& [k, v] : data.integers)
      write_dataset(file.id, "meta/" + k, H5T_NATIVE_INT64, {}, &v, sizeof v, path);
    for (const auto& [k, v] : data.reals)
      write_dataset(file.id, "meta/" + k, H5T_NATIVE_DOUBLE, {}, &v, sizeof v, path);
    for (const auto& [k, v] : data.strings) {
      H5Handle type{H5Tcopy(H5T_C_S1), H5Tclose};
      H5Tset_size(type.id, v.size() + 1);
      write_dataset(file.id, "meta/" + k, type.id, {}, v.c_str(), v.size(), path);
    }
    HALO_CHECK_T(IOError, H5Fflush(file.id, H5F_SCOPE_GLOBAL) >= 0, "cannot write checkpoint file '", tmp.path,
                 "'", h5_reason());
    // Closing writes the last metadata: its failure is a failed write too.
    const herr_t closed = H5Fclose(file.id);
    file.id = -1;
    HALO_CHECK_T(IOError, closed >= 0, "cannot write checkpoint file '", tmp.path, "'", h5_reason());
  }
  // The data must be on disk before the rename makes it the checkpoint; otherwise a crash of
  // the node can leave a renamed but empty file.
  sync_path(tmp.path, false, "checkpoint file");
  if (keep > 1) keep_current(path, step);
  HALO_CHECK_T(IOError, std::rename(tmp.path.c_str(), path.c_str()) == 0, "cannot rename checkpoint '", tmp.path,
               "' to '", path, "'", os_reason());
  tmp.committed = true;
  // The rename itself is durable only once the directory is.
  sync_path(parent_dir(path), true, "checkpoint directory");
  if (keep > 1) prune_kept(path, keep, step);
}

namespace {
std::atomic<int64_t> g_checkpoint_loads{0};
}  // namespace

int64_t checkpoint_files_loaded() { return g_checkpoint_loads.load(); }

CheckpointData load_checkpoint(const std::string& path) {
  ++g_checkpoint_loads;
  // Debian's (parallel) HDF5 is not thread-safe: while a checkpoint is written or read, the
  // loaders' background readers (which hold the same lock for each HDF5 call) must wait.
  std::lock_guard<std::recursive_mutex> hdf5_lock(data::hdf5_mutex());
  QuietHdf5 quiet;
  H5Handle file{H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose};
  HALO_CHECK_T(IOError, file.id >= 0, "cannot open checkpoint '", path, "'", h5_reason(),
               " (missing or not an HDF5 file)");
  CheckpointData out;
  Visit v{&out, path, nullptr};
  const herr_t rc = H5Lvisit(file.id, H5_INDEX_NAME, H5_ITER_INC, visit_cb, &v);
  if (v.error) std::rethrow_exception(v.error);
  HALO_CHECK_T(IOError, rc >= 0, "cannot read checkpoint '", path, "'", h5_reason());
  return out;
}

CheckpointData load_newest_valid_checkpoint(const std::vector<std::string>& candidates, size_t* chosen) {
  HALO_CHECK_T(IOError, !candidates.empty(), "no checkpoint to load");
  std::string reasons;
  for (size_t i = 0; i < candidates.size(); ++i) {
    try {
      CheckpointData d = load_checkpoint(candidates[i]);
      if (chosen) *chosen = i;
      return d;
    } catch (const Error& e) {
      reasons += std::string("\n  ") + e.what();
      if (i + 1 < candidates.size())
        log::warn(e.what(), "; falling back to the older checkpoint '", candidates[i + 1], "'");
    }
  }
  throw IOError("no usable checkpoint among " + std::to_string(candidates.size()) + ":" + reasons);
}

}  // namespace halo::train
