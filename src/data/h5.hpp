// Small helpers over the HDF5 C API shared by the loaders, the writers and the checkpoints.
// Private to the library: no public header includes hdf5.h, so a program using Halo needs no
// HDF5 include path (the element types and file drivers users name live in format.hpp).
//
// The Debian HDF5 is built parallel, hence without the thread-safe option: every HDF5 call
// made by Halo (the data code, and checkpoint writing and reading) holds `hdf5_mutex()`. Background readers therefore overlap only
// the transform and copy work with each other's I/O, never two HDF5 calls.
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "halo/data/format.hpp"
#include "halo/tensor/dtype.hpp"

namespace halo::data {

std::recursive_mutex& hdf5_mutex();

/// Owns one HDF5 identifier and closes it with the matching H5?close.
class H5Id {
 public:
  H5Id() = default;
  H5Id(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  H5Id(const H5Id&) = delete;
  H5Id& operator=(const H5Id&) = delete;
  H5Id(H5Id&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  H5Id& operator=(H5Id&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = o.id_;
      close_ = o.close_;
      o.id_ = -1;
    }
    return *this;
  }
  ~H5Id() { reset(); }
  void reset() {
    if (id_ >= 0 && close_) {
      std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
      close_(id_);
    }
    id_ = -1;
  }
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  hid_t id_ = -1;
  herr_t (*close_)(hid_t) = nullptr;
};

/// Opens read-only; throws IOError naming the file (and saying it may be truncated or not HDF5).
H5Id open_file(const std::string& path, Driver driver = Driver::posix);
/// How many times this process has called open_file (each call asks the file system about
/// the file): the tests check with it that start-up reads happen on one rank only.
int64_t open_file_count();
/// Opens a dataset; throws IOError naming the file and dataset when it is missing.
H5Id open_dataset(hid_t file, const std::string& path, const std::string& file_name);
bool has_object(hid_t file, const std::string& path);
std::vector<hsize_t> dataset_dims(hid_t dset);
/// "int16", "float32", ... for printing; numpy's spelling.
std::string type_name(hid_t dset);

/// The stored element type of a dataset (format.hpp's RawType).
RawType raw_type_of(hid_t dset, const std::string& what);
hid_t native_type(RawType t);

/// String attribute on an object, or `fallback` when absent.
std::string read_string_attr(hid_t obj, const std::string& name, const std::string& fallback = "");
void write_string_attr(hid_t obj, const std::string& name, const std::string& value);

/// Reads a whole small dataset as float32 / int32 (HDF5 converts).
std::vector<float> read_floats(hid_t file, const std::string& path, const std::string& file_name);

/// Creates a dataset (intermediate groups included); `chunk` empty means contiguous.
H5Id create_dataset(hid_t file, const std::string& path, hid_t type, const std::vector<hsize_t>& dims,
                    const std::vector<hsize_t>& chunk = {});
/// Writes a whole array into a new dataset.
void write_array(hid_t file, const std::string& path, hid_t type, const std::vector<hsize_t>& dims,
                 const void* data, const std::vector<hsize_t>& chunk = {});
/// Creates (truncating) a file for writing with the POSIX driver.
H5Id create_file(const std::string& path);

}  // namespace halo::data
