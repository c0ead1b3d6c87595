// Structure-aware HDF5 inputs for the fuzz targets: the fuzz input is decoded (through
// FuzzedDataProvider) into a small file description (datasets with names, element types,
// ranks, shapes, values, storage layouts, string attributes, links), which is written with
// the HDF5 C API. Sizes are capped, so a sample is at most kMaxElems elements: any huge
// allocation seen while reading such a file comes from the reader, not from the input.
#pragma once
#include <fuzzer/FuzzedDataProvider.h>
#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

namespace halo_fuzz {

constexpr int kMaxRank = 5;
constexpr hsize_t kMaxDim = 64;
constexpr hsize_t kMaxElems = 4096;

/// A per-process scratch folder (removed at exit). Never destroyed: the exit handler runs
/// after static destructors.
inline const std::string& tmp_dir() {
  static const std::string* dir = [] {
    const char* base = std::getenv("HALO_FUZZ_TMP");
    auto* d = new std::string(std::string(base ? base : "/tmp") + "/halo-fuzz-" + std::to_string(getpid()));
    std::filesystem::create_directories(*d);
    std::atexit([] { std::error_code ec; std::filesystem::remove_all(tmp_dir(), ec); });
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // the writer's own failures are expected
    return d;
  }();
  return *dir;
}

struct Id {
  hid_t id;
  herr_t (*close)(hid_t);
  Id(hid_t i, herr_t (*c)(hid_t)) : id(i), close(c) {}
  Id(const Id&) = delete;
  Id& operator=(const Id&) = delete;
  ~Id() { if (id >= 0) close(id); }
};

/// Element types a file may hold: every integer and float width in both byte orders,
/// fixed and variable-length strings, and types no reader supports (compound, enum,
/// bitfield, opaque, array).
inline hid_t pick_type(FuzzedDataProvider& p, bool& is_vlen_string) {
  is_vlen_string = false;
  static const hid_t* const basic[] = {
      &H5T_NATIVE_INT8_g,  &H5T_NATIVE_UINT8_g, &H5T_NATIVE_INT16_g, &H5T_NATIVE_UINT16_g, &H5T_NATIVE_INT32_g,
      &H5T_NATIVE_UINT32_g, &H5T_NATIVE_INT64_g, &H5T_NATIVE_UINT64_g, &H5T_NATIVE_FLOAT_g, &H5T_NATIVE_DOUBLE_g,
      &H5T_STD_I16BE_g,    &H5T_STD_U32BE_g,    &H5T_IEEE_F32BE_g,   &H5T_IEEE_F64BE_g,   &H5T_NATIVE_B8_g,
      &H5T_NATIVE_LDOUBLE_g};
  const int n = int(sizeof(basic) / sizeof(basic[0]));
  int k = p.ConsumeIntegralInRange<int>(0, n + 5);
  if (k < n) return H5Tcopy(*basic[k]);
  switch (k - n) {
    case 0: {  // fixed-length string
      hid_t t = H5Tcopy(H5T_C_S1);
      H5Tset_size(t, p.ConsumeIntegralInRange<size_t>(1, 16));
      if (p.ConsumeBool()) H5Tset_strpad(t, H5T_STR_NULLPAD);
      return t;
    }
    case 1: {  // variable-length string
      hid_t t = H5Tcopy(H5T_C_S1);
      H5Tset_size(t, H5T_VARIABLE);
      is_vlen_string = true;
      return t;
    }
    case 2: {  // compound {float, int}
      hid_t t = H5Tcreate(H5T_COMPOUND, 8);
      H5Tinsert(t, "a", 0, H5T_NATIVE_FLOAT);
      H5Tinsert(t, "b", 4, H5T_NATIVE_INT32);
      return t;
    }
    case 3: {  // enum over int8
      hid_t t = H5Tenum_create(H5T_NATIVE_INT8);
      for (int8_t v = 0; v < 3; ++v) H5Tenum_insert(t, std::string(1, char('A' + v)).c_str(), &v);
      return t;
    }
    case 4: {  // opaque
      hid_t t = H5Tcreate(H5T_OPAQUE, p.ConsumeIntegralInRange<size_t>(1, 8));
      H5Tset_tag(t, "fuzz");
      return t;
    }
    default: {  // array of 2 floats per element
      hsize_t two = 2;
      return H5Tarray_create2(H5T_NATIVE_FLOAT, 1, &two);
    }
  }
}

/// Shape: rank 0..kMaxRank (0 = scalar), dims favouring the sizes the layouts use, zero
/// included, total capped at kMaxElems. `null_space` asks for an H5S_NULL dataspace.
inline std::vector<hsize_t> pick_dims(FuzzedDataProvider& p, bool& null_space) {
  null_space = p.ConsumeIntegralInRange<int>(0, 31) == 0;
  int rank = p.ConsumeIntegralInRange<int>(0, kMaxRank);
  std::vector<hsize_t> dims;
  hsize_t total = 1;
  for (int k = 0; k < rank; ++k) {
    static const hsize_t common[] = {1, 2, 4, 0, 3, 8, 16};
    hsize_t d = p.ConsumeBool() ? common[p.ConsumeIntegralInRange<int>(0, 6)]
                                : p.ConsumeIntegralInRange<hsize_t>(0, kMaxDim);
    if (d > 0 && total * d > kMaxElems) d = std::max<hsize_t>(1, kMaxElems / total);
    total *= std::max<hsize_t>(d, 1);
    dims.push_back(d);
  }
  return dims;
}

inline hsize_t count(const std::vector<hsize_t>& dims) {
  hsize_t n = 1;
  for (auto d : dims) n *= d;
  return n;
}

/// Values: raw bytes from the input, with floats sometimes set to NaN, +-Inf, negative,
/// huge or denormal values.
inline void fill_values(FuzzedDataProvider& p, hid_t type, size_t n, std::vector<unsigned char>& buf,
                        std::vector<std::string>& vlen_store, std::vector<const char*>& vlen_ptrs, bool vlen) {
  if (vlen) {
    vlen_store.resize(n);
    vlen_ptrs.resize(n);
    for (size_t i = 0; i < n; ++i) {
      vlen_store[i] = p.ConsumeRandomLengthString(12);
      vlen_ptrs[i] = vlen_store[i].c_str();
    }
    return;
  }
  const size_t es = H5Tget_size(type);
  buf.assign(n * es, 0);
  std::string bytes = p.ConsumeBytesAsString(std::min(buf.size(), p.remaining_bytes() / 2));
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = bytes.empty() ? 0 : (unsigned char)bytes[i % bytes.size()];
  const bool is_float = H5Tget_class(type) == H5T_FLOAT && H5Tequal(type, H5T_NATIVE_LDOUBLE) <= 0;
  if (is_float && n > 0 && p.ConsumeBool()) {
    static const double special[] = {std::nan(""), INFINITY, -INFINITY, -1.0, 0.0, -0.0, 1e300,
                                     -1e300, 1e-310, 65504.0, 3.4e38, -2.5};
    for (int k = p.ConsumeIntegralInRange<int>(1, 8); k > 0; --k) {
      double v = special[p.ConsumeIntegralInRange<int>(0, 11)];
      size_t i = p.ConsumeIntegralInRange<size_t>(0, n - 1);
      if (es == 4) {
        float f = float(v);
        std::memcpy(&buf[i * 4], &f, 4);
        if (H5Tget_order(type) == H5T_ORDER_BE) std::reverse(buf.begin() + i * 4, buf.begin() + i * 4 + 4);
      } else if (es == 8) {
        std::memcpy(&buf[i * 8], &v, 8);
        if (H5Tget_order(type) == H5T_ORDER_BE) std::reverse(buf.begin() + i * 8, buf.begin() + i * 8 + 8);
      }
    }
  }
}

/// Writes one dataset at `name` (intermediate groups created) and returns whether it exists.
/// Storage: contiguous, chunked (optionally deflated) or compact; sometimes never written
/// (reads then return the fill value).
inline bool write_dataset(FuzzedDataProvider& p, hid_t file, const std::string& name) {
  bool vlen = false, null_space = false;
  Id type(pick_type(p, vlen), H5Tclose);
  auto dims = pick_dims(p, null_space);
  Id space(null_space ? H5Screate(H5S_NULL)
                      : dims.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple(int(dims.size()), dims.data(), nullptr),
           H5Sclose);
  Id lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  H5Pset_create_intermediate_group(lcpl.id, 1);
  Id dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  const int storage = p.ConsumeIntegralInRange<int>(0, 3);
  if (storage == 1 && !dims.empty() && !null_space) {
    std::vector<hsize_t> chunk(dims.size());
    for (size_t k = 0; k < dims.size(); ++k) chunk[k] = std::max<hsize_t>(1, p.ConsumeIntegralInRange<hsize_t>(1, std::max<hsize_t>(dims[k], 1)));
    H5Pset_chunk(dcpl.id, int(chunk.size()), chunk.data());
    if (p.ConsumeBool()) H5Pset_deflate(dcpl.id, 1);
  } else if (storage == 2 && count(dims) * H5Tget_size(type.id) < 32000) {
    H5Pset_layout(dcpl.id, H5D_COMPACT);
  }
  Id ds(H5Dcreate2(file, name.c_str(), type.id, space.id, lcpl.id, dcpl.id, H5P_DEFAULT), H5Dclose);
  if (ds.id < 0) return false;
  if (null_space || p.ConsumeIntegralInRange<int>(0, 15) == 0) return true;  // nothing written
  const size_t n = dims.empty() ? 1 : size_t(count(dims));
  std::vector<unsigned char> buf;
  std::vector<std::string> vs;
  std::vector<const char*> vp;
  fill_values(p, type.id, n, buf, vs, vp, vlen);
  const void* data = vlen ? static_cast<const void*>(vp.data()) : buf.data();
  if (n > 0) H5Dwrite(ds.id, type.id, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
  return true;
}

/// A string attribute (fixed or variable length, scalar or an array of strings) or one of
/// another type under the same name, on `obj`.
inline void write_attr(FuzzedDataProvider& p, hid_t obj, const std::string& name, const std::string& value) {
  H5Adelete(obj, name.c_str());
  const int kind = p.ConsumeIntegralInRange<int>(0, 5);
  hsize_t n = kind == 3 ? p.ConsumeIntegralInRange<hsize_t>(0, 5) : 1;
  Id space(kind == 3 ? H5Screate_simple(1, &n, nullptr) : H5Screate(H5S_SCALAR), H5Sclose);
  if (kind == 4) {  // an integer attribute where a string is expected
    int32_t v = p.ConsumeIntegral<int32_t>();
    Id a(H5Acreate2(obj, name.c_str(), H5T_NATIVE_INT32, space.id, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
    H5Awrite(a.id, H5T_NATIVE_INT32, &v);
    return;
  }
  if (kind == 1 || kind == 5) {  // variable length (h5py's default), UTF-8 or ASCII
    Id t(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(t.id, H5T_VARIABLE);
    if (kind == 5) H5Tset_cset(t.id, H5T_CSET_UTF8);
    const char* s = value.c_str();
    Id a(H5Acreate2(obj, name.c_str(), t.id, space.id, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
    H5Awrite(a.id, t.id, &s);
    return;
  }
  // fixed length: exact, padded, or an array of n strings
  Id t(H5Tcopy(H5T_C_S1), H5Tclose);
  size_t len = value.size() + (kind == 2 ? p.ConsumeIntegralInRange<size_t>(0, 4) : 1);
  if (len == 0) len = 1;
  H5Tset_size(t.id, len);
  if (kind == 2) H5Tset_strpad(t.id, H5T_STR_NULLPAD);
  std::vector<char> buf(len * std::max<hsize_t>(n, 1), 0);
  for (hsize_t i = 0; i < n; ++i) std::memcpy(&buf[i * len], value.data(), std::min(len, value.size()));
  Id a(H5Acreate2(obj, name.c_str(), t.id, space.id, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  H5Awrite(a.id, t.id, buf.data());
}

/// A name from `common` (the ones readers look for) or a random path of letters and '/'.
inline std::string pick_name(FuzzedDataProvider& p, const std::vector<std::string>& common) {
  if (!common.empty() && p.ConsumeIntegralInRange<int>(0, 3) != 0)
    return common[p.ConsumeIntegralInRange<size_t>(0, common.size() - 1)];
  std::string s = p.ConsumeRandomLengthString(10);
  for (auto& c : s) c = "abxyz/._-0"[(unsigned char)c % 10];
  if (s.empty() || s == "/" ) s = "z";
  return s;
}

/// Offsets and sizes of the contiguous datasets' raw data in a closed file: the regions
/// in which flipping bytes changes values but never HDF5's own structures.
struct Region { haddr_t offset; hsize_t size; };
inline herr_t collect_regions(hid_t obj, const char* name, const H5O_info_t* info, void* op) {
  if (info->type != H5O_TYPE_DATASET) return 0;
  Id ds(H5Dopen2(obj, name, H5P_DEFAULT), H5Dclose);
  haddr_t off = H5Dget_offset(ds.id);
  hsize_t size = H5Dget_storage_size(ds.id);
  if (off != HADDR_UNDEF && size > 0) static_cast<std::vector<Region>*>(op)->push_back({off, size});
  return 0;
}
inline std::vector<Region> data_regions(const std::string& path) {
  std::vector<Region> out;
  Id f(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (f.id >= 0) H5Ovisit(f.id, H5_INDEX_NAME, H5_ITER_INC, collect_regions, &out);
  return out;
}

/// Copies `src` to `dst` flipping bytes (chosen by the input) inside the data regions only.
inline void flip_data_bytes(FuzzedDataProvider& p, const std::string& src, const std::string& dst,
                            const std::vector<Region>& regions) {
  std::vector<unsigned char> bytes;
  if (FILE* f = std::fopen(src.c_str(), "rb")) {
    unsigned char b[4096];
    size_t n;
    while ((n = std::fread(b, 1, sizeof b, f)) > 0) bytes.insert(bytes.end(), b, b + n);
    std::fclose(f);
  }
  if (!regions.empty()) {
    for (int k = p.ConsumeIntegralInRange<int>(1, 64); k > 0 && p.remaining_bytes() > 0; --k) {
      const Region& r = regions[p.ConsumeIntegralInRange<size_t>(0, regions.size() - 1)];
      size_t at = size_t(r.offset) + p.ConsumeIntegralInRange<size_t>(0, size_t(r.size) - 1);
      if (at < bytes.size()) bytes[at] ^= p.ConsumeIntegralInRange<unsigned char>(1, 255);
    }
  }
  if (FILE* f = std::fopen(dst.c_str(), "wb")) {
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
  }
}

}  // namespace halo_fuzz
