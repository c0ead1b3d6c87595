#include "halo/train/checkpoint.hpp"

#include <hdf5.h>
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <vector>

#include "halo/util/error.hpp"

namespace halo::train {

namespace {

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

void write_dataset(hid_t file, const std::string& name, hid_t type, const std::vector<hsize_t>& dims,
                   const void* data, const std::string& path) {
  H5Handle lcpl{H5Pcreate(H5P_LINK_CREATE), H5Pclose};
  H5Pset_create_intermediate_group(lcpl.id, 1);
  H5Handle space{dims.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple(int(dims.size()), dims.data(), nullptr),
                 H5Sclose};
  H5Handle ds{H5Dcreate2(file, name.c_str(), type, space.id, lcpl.id, H5P_DEFAULT, H5P_DEFAULT), H5Dclose};
  HALO_CHECK_T(IOError, ds.id >= 0, "checkpoint ", path, ": cannot create dataset '", name, "'");
  HALO_CHECK_T(IOError, H5Dwrite(ds.id, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0, "checkpoint ", path,
               ": cannot write dataset '", name, "'");
}

void write_string_attr(hid_t obj, const char* attr, const std::string& value) {
  H5Handle type{H5Tcopy(H5T_C_S1), H5Tclose};
  H5Tset_size(type.id, value.size() + 1);
  H5Handle space{H5Screate(H5S_SCALAR), H5Sclose};
  H5Handle a{H5Acreate2(obj, attr, type.id, space.id, H5P_DEFAULT, H5P_DEFAULT), H5Aclose};
  H5Awrite(a.id, type.id, value.c_str());
}

std::string read_string(hid_t obj, bool is_attr) {
  H5Handle space{is_attr ? H5Aget_space(obj) : H5Dget_space(obj), H5Sclose};
  if (H5Sget_simple_extent_npoints(space.id) != 1) return std::string();  // not one string: buf is for one
  H5Handle type{is_attr ? H5Aget_type(obj) : H5Dget_type(obj), H5Tclose};
  size_t n = H5Tget_size(type.id);
  std::vector<char> buf(n + 1, 0);
  H5Handle mem{H5Tcopy(H5T_C_S1), H5Tclose};
  H5Tset_size(mem.id, n);
  if (is_attr)
    H5Aread(obj, mem.id, buf.data());
  else
    H5Dread(obj, mem.id, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data());
  return std::string(buf.data());
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

struct Visit {
  CheckpointData* out;
  std::string path;
  std::exception_ptr error;  // thrown in the callback, rethrown after H5Lvisit
};

// Link iteration with the API-version-neutral names, so this compiles against HDF5 1.10
// (Debian) and 1.12+ (Spack) alike; the object type is asked of the opened object.
herr_t visit_one(hid_t file, const char* name, Visit* v) {
  {
    H5Handle obj{H5Oopen(file, name, H5P_DEFAULT), H5Oclose};
    if (obj.id < 0 || H5Iget_type(obj.id) != H5I_DATASET) return 0;
  }
  std::string n = name;
  H5Handle ds{H5Dopen2(file, name, H5P_DEFAULT), H5Dclose};
  H5Handle type{H5Dget_type(ds.id), H5Tclose};
  H5Handle space{H5Dget_space(ds.id), H5Sclose};
  int rank = H5Sget_simple_extent_ndims(space.id);
  std::vector<hsize_t> dims(size_t(std::max(rank, 0)));
  if (rank > 0) H5Sget_simple_extent_dims(space.id, dims.data(), nullptr);
  if (n.rfind("meta/", 0) == 0) {
    std::string key = n.substr(5);
    HALO_CHECK_T(IOError, H5Sget_simple_extent_npoints(space.id) == 1, "checkpoint ", v->path, ": dataset '", n,
                 "' holds ", H5Sget_simple_extent_npoints(space.id), " values, expected one");
    H5T_class_t cls = H5Tget_class(type.id);
    if (cls == H5T_STRING) {
      v->out->strings[key] = read_string(ds.id, false);
    } else if (cls == H5T_INTEGER) {
      int64_t x = 0;
      H5Dread(ds.id, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &x);
      v->out->integers[key] = x;
    } else {
      double x = 0;
      H5Dread(ds.id, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, &x);
      v->out->reals[key] = x;
    }
    return 0;
  }
  Shape shape(dims.begin(), dims.end());
  DType dt;
  if (H5Aexists(ds.id, "halo_dtype") > 0) {
    H5Handle a{H5Aopen(ds.id, "halo_dtype", H5P_DEFAULT), H5Aclose};
    std::string s = read_string(a.id, true);
    dt = s == "bf16" ? DType::bf16 : DType::f16;
  } else if (H5Tget_class(type.id) == H5T_FLOAT) {
    dt = H5Tget_size(type.id) == 8 ? DType::f64 : DType::f32;
  } else if (H5Tget_class(type.id) == H5T_INTEGER) {
    size_t sz = H5Tget_size(type.id);
    dt = sz == 8 ? DType::i64 : sz == 4 ? DType::i32 : DType::u8;
  } else {
    throw IOError("checkpoint " + v->path + ": dataset '" + n + "' has an unsupported type");
  }
  Tensor t = Tensor::empty(shape, dt);
  HALO_CHECK_T(IOError, H5Dread(ds.id, h5_type(dt), H5S_ALL, H5S_ALL, H5P_DEFAULT, t.raw_data()) >= 0,
               "checkpoint ", v->path, ": cannot read dataset '", n, "'");
  v->out->tensors[n] = t;
  return 0;
}

// C++ exceptions must not unwind through HDF5's C frames (its iteration state and API
// context would be left behind): the callback stops the iteration instead.
herr_t visit_cb(hid_t file, const char* name, const H5L_info_t*, void* op) {
  auto* v = static_cast<Visit*>(op);
  try {
    return visit_one(file, name, v);
  } catch (...) {
    v->error = std::current_exception();
    return -1;
  }
}

}  // namespace

void save_checkpoint(const std::string& path, const CheckpointData& data) {
  QuietHdf5 quiet;
  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  {
    H5Handle file{H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose};
    HALO_CHECK_T(IOError, file.id >= 0, "cannot create checkpoint file '", tmp,
                 "' (does the directory exist and is it writable?)");
    for (const auto& [name, t] : data.tensors) {
      HALO_CHECK_T(IOError, t.defined(), "checkpoint ", path, ": tensor '", name, "' is undefined");
      Tensor c = t.to(Device::cpu()).contiguous();
      std::vector<hsize_t> dims(c.shape().begin(), c.shape().end());
      write_dataset(file.id, name, h5_type(c.dtype()), dims, c.raw_data(), path);
      if (c.dtype() == DType::bf16 || c.dtype() == DType::f16) {
        H5Handle ds{H5Dopen2(file.id, name.c_str(), H5P_DEFAULT), H5Dclose};
        write_string_attr(ds.id, "halo_dtype", halo::name(c.dtype()));
      }
    }
    for (const auto& [k, v] : data.integers) write_dataset(file.id, "meta/" + k, H5T_NATIVE_INT64, {}, &v, path);
    for (const auto& [k, v] : data.reals) write_dataset(file.id, "meta/" + k, H5T_NATIVE_DOUBLE, {}, &v, path);
    for (const auto& [k, v] : data.strings) {
      H5Handle type{H5Tcopy(H5T_C_S1), H5Tclose};
      H5Tset_size(type.id, v.size() + 1);
      write_dataset(file.id, "meta/" + k, type.id, {}, v.c_str(), path);
    }
    HALO_CHECK_T(IOError, H5Fflush(file.id, H5F_SCOPE_GLOBAL) >= 0, "cannot flush checkpoint '", tmp, "'");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw IOError("cannot rename checkpoint '" + tmp + "' to '" + path + "'");
  }
}

CheckpointData load_checkpoint(const std::string& path) {
  QuietHdf5 quiet;
  H5Handle file{H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose};
  HALO_CHECK_T(IOError, file.id >= 0, "cannot open checkpoint '", path, "' (missing or not an HDF5 file)");
  CheckpointData out;
  Visit v{&out, path};
  const herr_t rc = H5Lvisit(file.id, H5_INDEX_NAME, H5_ITER_INC, visit_cb, &v);
  if (v.error) std::rethrow_exception(v.error);
  HALO_CHECK_T(IOError, rc >= 0, "cannot read checkpoint '", path, "'");
  return out;
}

}  // namespace halo::train
