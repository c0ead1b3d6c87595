#include "data/h5.hpp"

#include <atomic>
#include <filesystem>

#include <mpi.h>

#include "halo/util/error.hpp"

namespace halo::data {

std::recursive_mutex& hdf5_mutex() {
  static std::recursive_mutex m;
  return m;
}

const char* name(Driver d) {
  switch (d) {
    case Driver::automatic: return "auto";
    case Driver::posix: return "posix";
    case Driver::mpio: return "mpio";
  }
  return "?";
}

namespace {

// HDF5 prints its own error stack to stderr on every failure; Halo reports errors itself
// (with the file and dataset), so the automatic printing is switched off once.
void silence_hdf5() {
  static bool done = [] {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)done;
}

bool mpi_multithreaded() {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  if (!init || fin) return false;
  int level = 0;
  MPI_Query_thread(&level);
  return level == MPI_THREAD_MULTIPLE;
}

}  // namespace

namespace {
std::atomic<int64_t> g_open_file_calls{0};
}  // namespace

int64_t open_file_count() { return g_open_file_calls.load(); }

H5Id open_file(const std::string& path, Driver driver) {
  ++g_open_file_calls;
  std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  silence_hdf5();
  H5Id fapl{H5Pcreate(H5P_FILE_ACCESS), H5Pclose};
  if (driver == Driver::automatic) driver = mpi_multithreaded() ? Driver::mpio : Driver::posix;
#ifdef H5_HAVE_PARALLEL
  if (driver == Driver::mpio) {
    HALO_CHECK_T(IOError, mpi_multithreaded(), "file ", path,
                 ": the MPI-IO driver needs MPI initialised with MPI_THREAD_MULTIPLE (the loader reads "
                 "from background threads); use the posix driver or MPI_Init_thread");
    H5Pset_fapl_mpio(fapl.get(), MPI_COMM_SELF, MPI_INFO_NULL);
  }
#else
  HALO_CHECK_T(IOError, driver != Driver::mpio, "file ", path, ": HDF5 was built without MPI-IO support");
#endif
  HALO_CHECK_T(IOError, !std::filesystem::is_directory(path), "file ", path,
               ": is a directory, not an HDF5 file (pass the files in it, e.g. DIR/*.h5)");
  htri_t is_h5 = H5Fis_hdf5(path.c_str());
  HALO_CHECK_T(IOError, is_h5 > 0, "file ", path,
               is_h5 == 0 ? ": not an HDF5 file (truncated or another format?)"
                          : ": cannot open (missing or unreadable?)");
  H5Id f{H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get()), H5Fclose};
  HALO_CHECK_T(IOError, f.valid(), "file ", path, ": cannot open as HDF5 (truncated or corrupt?)");
  return f;
}

bool has_object(hid_t file, const std::string& path) {
  std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  // H5Lexists needs every intermediate group to exist, so walk the path.
  size_t pos = 0;
  while (true) {
    size_t next = path.find('/', pos);
    std::string prefix = path.substr(0, next);
    if (!prefix.empty() && H5Lexists(file, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (next == std::string::npos) return true;
    pos = next + 1;
  }
}

H5Id open_dataset(hid_t file, const std::string& path, const std::string& file_name) {
  std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  HALO_CHECK_T(IOError, has_object(file, path), "file ", file_name, ": dataset '", path,
               "' not found (wrong format or layout? see docs/data-formats.md)");
  H5Id d{H5Dopen2(file, path.c_str(), H5P_DEFAULT), H5Dclose};
  HALO_CHECK_T(IOError, d.valid(), "file ", file_name, ": cannot open dataset '", path, "'");
  return d;
}

std::vector<hsize_t> dataset_dims(hid_t dset) {
  std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  H5Id space{H5Dget_space(dset), H5Sclose};
  int nd = H5Sget_simple_extent_ndims(space.get());
  std::vector<hsize_t> dims(size_t(std::max(nd, 0)));
  if (nd > 0) H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  return dims;
}

RawType raw_type_of(hid_t dset, const std::string& what) {
  std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  H5Id t{H5Dget_type(dset), H5Tclose};
  H5T_class_t cls = H5Tget_class(t.get());
  size_t size = H5Tget_size(t.get());
  if (cls == H5T_FLOAT) {
    if (size == 4) return RawType::f32;
    if (size == 8) return RawType::f64;
  } else if (cls == H5T_INTEGER) {
    bool is_signed = H5Tget_sign(t.get()) == H5T_SGN_2;
    switch (size) {
      case 1: return is_signed ? RawType::i8 : RawType::u8;
      case 2: return is_signed ? RawType::i16 : RawType::u16;
      case 4: return is_signed ? RawType::i32 : RawType::u32;
      case 8: return RawType::i64;
    }
  }
  throw IOError(str(what, ": element type (class ", int(cls), ", ", size,
                    " bytes) is not a supported integer or float type"));
}

hid_t native_type(RawType t) {
  switch (t) {
    case RawType::i8: return H5T_NATIVE_INT8;
    case RawType::u8: return H5T_NATIVE_UINT8;
    case RawType::i16: return H5T_NATIVE_INT16;
    case RawType::u16: return H5T_NATIVE_UINT16;
    case RawType::i32: return H5T_NATIVE_INT32;
    case RawType::u32: return H5T_NATIVE_UINT32;
    case RawType::i64: return H5T_NATIVE_INT64;
    case RawType::f32: return H5T_NATIVE_FLOAT;
    case RawType::f64: return H5T_NATIVE_DOUBLE;
  }
  return H5T_NATIVE_FLOAT;
}

size_t raw_size(RawType t) {
  switch (t) {
    case RawType::i8:
    case RawType::u8: return 1;
    case RawType::i16:
    case RawType::u16: return 2;
    case RawType::i32:
    case RawType::u32:
    case RawType::f32: return 4;
    case RawType::i64:
    case RawType::f64: return 8;
  }
  return 4;
}

const char* name(RawType t) {
  switch (t) {
    case RawType::i8: return "int8";
    case RawType::u8: return "uint8";
    case RawType::i16: return "int16";
    case RawType::u16: return "uint16";
    case RawType::i32: return "int32";
    case RawType::u32: return "uint32";
    case RawType::i64: return "int64";
    case RawType::f32: return "float32";
    case RawType::f64: return "float64";
  }
  return "?";
}

std::string type_name(hid_t dset) {
  try {
    return name(raw_type_of(dset, "dataset"));
  } catch (const IOError&) {
    return "unsupported";
  }
}

std::string read_string_attr(hid_t obj, const std::string& attr, const std::string& fallback) {
  std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  if (H5Aexists(obj, attr.c_str()) <= 0) return fallback;
  H5Id a{H5Aopen(obj, attr.c_str(), H5P_DEFAULT), H5Aclose};
  H5Id type{H5Aget_type(a.get()), H5Tclose};
  if (H5Tget_class(type.get()) != H5T_STRING) return fallback;
  H5Id space{H5Aget_space(a.get()), H5Sclose};  // one string: an array would overrun the buffers below
  HALO_CHECK_T(IOError, H5Sget_simple_extent_npoints(space.get()) == 1, "attribute '", attr, "' holds ",
               H5Sget_simple_extent_npoints(space.get()), " strings, expected one");
  if (H5Tis_variable_str(type.get()) > 0) {
    H5Id mem{H5Tcopy(H5T_C_S1), H5Tclose};
    H5Tset_size(mem.get(), H5T_VARIABLE);
    H5Tset_cset(mem.get(), H5Tget_cset(type.get()));  // h5py writes UTF-8; HDF5 will not convert
    char* s = nullptr;
    if (H5Aread(a.get(), mem.get(), &s) < 0 || !s) return fallback;
    std::string out(s);
    H5free_memory(s);
    return out;
  }
  size_t n = H5Tget_size(type.get());
  std::vector<char> buf(n + 1, 0);
  H5Id mem{H5Tcopy(H5T_C_S1), H5Tclose};
  H5Tset_size(mem.get(), n + 1);
  H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
  if (H5Aread(a.get(), mem.get(), buf.data()) < 0) return fallback;
  return std::string(buf.data());
}

void write_string_attr(hid_t obj, const std::string& attr, const std::string& value) {
  std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  H5Id type{H5Tcopy(H5T_C_S1), H5Tclose};
  H5Tset_size(type.get(), value.size() + 1);
  H5Id space{H5Screate(H5S_SCALAR), H5Sclose};
  H5Id a{H5Acreate2(obj, attr.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose};
  HALO_CHECK_T(IOError, a.valid(), "cannot write attribute '", attr, "'");
  H5Awrite(a.get(), type.get(), value.c_str());
}

std::vector<float> read_floats(hid_t file, const std::string& path, const std::string& file_name) {
  std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  H5Id d = open_dataset(file, path, file_name);
  hsize_t n = 1;
  for (auto v : dataset_dims(d.get())) n *= v;
  std::vector<float> out(n);
  HALO_CHECK_T(IOError, H5Dread(d.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) >= 0,
               "file ", file_name, ": cannot read dataset '", path, "' (truncated?)");
  return out;
}

H5Id create_file(const std::string& path) {
  std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  silence_hdf5();
  H5Id f{H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose};
  HALO_CHECK_T(IOError, f.valid(), "file ", path, ": cannot create (directory missing or not writable?)");
  return f;
}

H5Id create_dataset(hid_t file, const std::string& path, hid_t type, const std::vector<hsize_t>& dims,
                    const std::vector<hsize_t>& chunk) {
  std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  H5Id lcpl{H5Pcreate(H5P_LINK_CREATE), H5Pclose};
  H5Pset_create_intermediate_group(lcpl.get(), 1);
  H5Id dcpl{H5Pcreate(H5P_DATASET_CREATE), H5Pclose};
  if (!chunk.empty()) H5Pset_chunk(dcpl.get(), int(chunk.size()), chunk.data());
  H5Id space{H5Screate_simple(int(dims.size()), dims.data(), nullptr), H5Sclose};
  H5Id d{H5Dcreate2(file, path.c_str(), type, space.get(), lcpl.get(), dcpl.get(), H5P_DEFAULT), H5Dclose};
  HALO_CHECK_T(IOError, d.valid(), "cannot create dataset '", path, "'");
  return d;
}

void write_array(hid_t file, const std::string& path, hid_t type, const std::vector<hsize_t>& dims,
                 const void* data, const std::vector<hsize_t>& chunk) {
  std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  H5Id d = create_dataset(file, path, type, dims, chunk);
  HALO_CHECK_T(IOError, H5Dwrite(d.get(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0,
               "cannot write dataset '", path, "'");
}

}  // namespace halo::data
