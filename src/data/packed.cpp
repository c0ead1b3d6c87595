#include "halo/data/packed.hpp"

#include "data/h5.hpp"

#include <cstdio>
#include <filesystem>
#include <numeric>

#include "halo/util/error.hpp"

namespace halo::data {

struct PackedWriter::Impl {
  std::string path;
  int64_t n = 0;
  Shape sample, label;
  RawType type;
  bool mask = false;
  H5Id file, data, lab, pos;
};

namespace {
std::vector<hsize_t> with_rows(int64_t n, const Shape& s) {
  std::vector<hsize_t> d{hsize_t(n)};
  for (auto v : s) d.push_back(hsize_t(v));
  return d;
}

void write_row(hid_t dset, int64_t row, const Shape& s, hid_t type, const void* buf, const std::string& what) {
  auto dims = with_rows(1, s);
  std::vector<hsize_t> start(dims.size(), 0);
  start[0] = hsize_t(row);
  H5Id fspace{H5Dget_space(dset), H5Sclose};
  H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start.data(), nullptr, dims.data(), nullptr);
  H5Id mspace{H5Screate_simple(int(dims.size()), dims.data(), nullptr), H5Sclose};
  HALO_CHECK_T(IOError, H5Dwrite(dset, type, mspace.get(), fspace.get(), H5P_DEFAULT, buf) >= 0, what,
               ": cannot write row ", row, " (disk full?)");
}
}  // namespace

PackedWriter::PackedWriter(const std::string& path, int64_t n, const Shape& sample, RawType type,
                           const Shape& label, const PackedDescription& desc)
    : impl_(std::make_unique<Impl>()) {
  std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  Impl& m = *impl_;
  m.path = path;
  m.n = n;
  m.sample = sample;
  m.label = label;
  m.type = type;
  m.mask = desc.label_kind == LabelKind::mask;
  m.file = create_file(path);
  hid_t f = m.file.get();
  write_string_attr(f, "halo_format", "packed");
  write_string_attr(f, "axes", desc.axes);
  write_string_attr(f, "transform", name(desc.transform));
  write_string_attr(f, "label_kind", name(desc.label_kind));
  write_string_attr(f, "source_format", desc.source_format);
  auto ddims = with_rows(n, sample);
  auto chunk = with_rows(1, sample);
  m.data = create_dataset(f, "data", native_type(type), ddims, n > 0 ? chunk : std::vector<hsize_t>{});
  m.lab = create_dataset(f, "label", m.mask ? H5T_NATIVE_INT32 : H5T_NATIVE_FLOAT, with_rows(n, label));
  m.pos = create_dataset(f, "origin/position", H5T_NATIVE_INT64, {hsize_t(n), 5});
  if (!desc.norm_min.empty()) {
    write_array(f, "norm/minval", H5T_NATIVE_FLOAT, {hsize_t(desc.norm_min.size())}, desc.norm_min.data());
    write_array(f, "norm/maxval", H5T_NATIVE_FLOAT, {hsize_t(desc.norm_max.size())}, desc.norm_max.data());
  }
  if (!desc.origin_files.empty()) {
    std::vector<const char*> names;
    for (const auto& s : desc.origin_files) names.push_back(s.c_str());
    H5Id st{H5Tcopy(H5T_C_S1), H5Tclose};
    H5Tset_size(st.get(), H5T_VARIABLE);
    write_array(f, "origin/files", st.get(), {hsize_t(names.size())}, names.data());
  }
}

PackedWriter::~PackedWriter() {
  try {
    close();
  } catch (...) {
  }
}

void PackedWriter::write(int64_t row, const void* sample, const void* label, const std::array<int64_t, 5>& origin) {
  std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  Impl& m = *impl_;
  HALO_CHECK_T(IOError, m.file.valid(), "packed shard ", m.path, ": already closed");
  HALO_CHECK_T(IOError, row >= 0 && row < m.n, "packed shard ", m.path, ": row ", row, " of ", m.n);
  write_row(m.data.get(), row, m.sample, native_type(m.type), sample, "packed shard " + m.path + " 'data'");
  write_row(m.lab.get(), row, m.label, m.mask ? H5T_NATIVE_INT32 : H5T_NATIVE_FLOAT, label,
            "packed shard " + m.path + " 'label'");
  write_row(m.pos.get(), row, {5}, H5T_NATIVE_INT64, origin.data(), "packed shard " + m.path + " 'origin/position'");
}

void PackedWriter::close() {
  if (!impl_) return;
  std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  impl_->pos.reset();
  impl_->lab.reset();
  impl_->data.reset();
  impl_->file.reset();
}

std::vector<std::string> pack(const H5Dataset& ds, const std::string& out_dir, int64_t per_shard,
                              const std::string& prefix, std::vector<int64_t> which) {
  HALO_CHECK_T(ConfigError, per_shard > 0, "pack: samples per shard must be positive, got ", per_shard);
  if (which.empty()) {
    which.resize(size_t(ds.size()));
    std::iota(which.begin(), which.end(), int64_t(0));
  }
  std::filesystem::create_directories(out_dir);
  const Layout& l = ds.layout();
  PackedDescription desc;
  desc.axes = l.axes;
  desc.transform = l.transform;
  desc.label_kind = l.label_kind;
  desc.source_format = l.format;
  desc.norm_min = ds.norm_min();
  desc.norm_max = ds.norm_max();
  desc.origin_files = ds.files();
  Shape label_stored = l.label_kind == LabelKind::mask ? ds.label_shape() : ds.label_shape();
  std::vector<unsigned char> raw(ds.stored_bytes()), lab(ds.label_bytes());
  std::vector<std::string> out;
  for (size_t begin = 0, shard = 0; begin < which.size(); begin += size_t(per_shard), ++shard) {
    size_t end = std::min(which.size(), begin + size_t(per_shard));
    char name[64];
    std::snprintf(name, sizeof name, "-%05zu.h5", shard);
    std::string path = (std::filesystem::path(out_dir) / (prefix + name)).string();
    PackedWriter w(path, int64_t(end - begin), ds.stored_shape(), ds.stored_type(), label_stored, desc);
    for (size_t k = begin; k < end; ++k) {
      int64_t i = which[k];
      ds.read_raw(i, raw.data(), lab.data());
      const SampleRef& r = ds.ref(i);
      w.write(int64_t(k - begin), raw.data(), lab.data(), {r.file, r.index, r.origin[0], r.origin[1], r.origin[2]});
    }
    w.close();
    out.push_back(path);
  }
  return out;
}

}  // namespace halo::data
