// libFuzzer target: Halo's HDF5 sample readers (detect_layout, layout_by_name, H5Dataset).
//
// Input (structure-aware): a description of 1-2 data files plus a stats.h5 beside them,
// decoded by halo_fuzz::write_dataset & co. (h5_builder.hpp): datasets named as the layouts
// expect (x, y, full, unitPar, climate/data, climate/labels_0, data, label, norm/...,
// climate/minval|maxval) or randomly, of any rank and shape (zero included), integer,
// float, string and unsupported element types, random values (NaN, Inf, negative),
// packed-shard attributes (halo_format, axes, transform, label_kind) of odd types.
// The first input byte's low bit picks the other mode: a valid CosmoFlow file with bytes
// flipped inside its datasets' raw data only.
//
// Every layout (auto-detected, each preset, one fuzzed custom layout) opens the files and
// reads every sample (read, channels-last read, read_raw, read_block). Contract: a
// halo::Error (IOError, ShapeError, ConfigError) or correct reads; never a crash, sanitizer
// report, other exception, or allocation beyond -malloc_limit_mb. Every delivered sample
// (both axis orders) is checked against read_raw() through an independent reference
// transform, labels must agree between reads, and the hyperslab read_block of a block
// must equal the base Dataset::read_block (read() cropped).
#include <cmath>
#include <cstdio>
#include <cstring>

#include "h5_builder.hpp"
#include "halo/data/dataset.hpp"
#include "halo/data/format.hpp"
#include "halo/util/error.hpp"

using namespace halo;
using namespace halo::data;
using halo_fuzz::Id;

namespace {

const std::vector<std::string> kNames = {"x", "y", "full", "unitPar", "climate/data", "climate/labels_0",
                                         "data", "label", "norm/minval", "norm/maxval"};

void write_file(FuzzedDataProvider& p, const std::string& path, bool stats) {
  Id f(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
  if (f.id < 0) return;
  if (stats) {
    for (const char* n : {"climate/minval", "climate/maxval"})
      if (p.ConsumeIntegralInRange<int>(0, 7) != 0) halo_fuzz::write_dataset(p, f.id, n);
    return;
  }
  for (int k = p.ConsumeIntegralInRange<int>(0, 6); k > 0; --k) halo_fuzz::write_dataset(p, f.id, halo_fuzz::pick_name(p, kNames));
  if (p.ConsumeBool()) {  // packed-shard attributes
    static const char* const fmt[] = {"packed", "other", ""};
    static const char* const axes[] = {"CDHW", "DHWC", "HWC", "C", "", "CC", "DHW", "ABCDEFG"};
    static const char* const tf[] = {"none", "log1p", "minmax", "bogus"};
    static const char* const lk[] = {"vector", "mask", "x"};
    halo_fuzz::write_attr(p, f.id, "halo_format", fmt[p.ConsumeIntegralInRange<int>(0, 2)]);
    if (p.ConsumeBool()) halo_fuzz::write_attr(p, f.id, "axes", axes[p.ConsumeIntegralInRange<int>(0, 7)]);
    if (p.ConsumeBool()) halo_fuzz::write_attr(p, f.id, "transform", tf[p.ConsumeIntegralInRange<int>(0, 3)]);
    if (p.ConsumeBool()) halo_fuzz::write_attr(p, f.id, "label_kind", lk[p.ConsumeIntegralInRange<int>(0, 2)]);
  }
}

// A valid MLPerf CosmoFlow-like file (small): x (4,4,4,4) int16, y (4,) float32, and a
// LBANN-like one: full (4,4,4,4) float32, unitPar (4,) float32.
void write_valid(const std::string& path, bool lbann) {
  Id f(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
  hsize_t dims[4] = {4, 4, 4, 4}, ldim = 4;
  std::vector<int16_t> xi(256);
  std::vector<float> xf(256), y = {0.1f, 0.2f, 0.3f, 0.4f};
  for (int i = 0; i < 256; ++i) xi[size_t(i)] = int16_t(i % 7), xf[size_t(i)] = float(i) * 0.5f;
  Id s(H5Screate_simple(4, dims, nullptr), H5Sclose), ls(H5Screate_simple(1, &ldim, nullptr), H5Sclose);
  Id x(H5Dcreate2(f.id, lbann ? "full" : "x", lbann ? H5T_NATIVE_FLOAT : H5T_NATIVE_INT16, s.id, H5P_DEFAULT,
                  H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
  H5Dwrite(x.id, lbann ? H5T_NATIVE_FLOAT : H5T_NATIVE_INT16, H5S_ALL, H5S_ALL, H5P_DEFAULT,
           lbann ? static_cast<const void*>(xf.data()) : xi.data());
  Id yd(H5Dcreate2(f.id, lbann ? "unitPar" : "y", H5T_NATIVE_FLOAT, ls.id, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
        H5Dclose);
  H5Dwrite(yd.id, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, y.data());
}

template <class T>
double elem(const unsigned char* raw, size_t i) {
  T v;
  std::memcpy(&v, raw + i * sizeof(T), sizeof(T));
  return double(v);
}
double raw_value(RawType t, const unsigned char* raw, size_t i, bool& small_int) {
  small_int = t == RawType::i8 || t == RawType::u8 || t == RawType::i16 || t == RawType::u16;
  switch (t) {
    case RawType::i8: return elem<int8_t>(raw, i);
    case RawType::u8: return elem<uint8_t>(raw, i);
    case RawType::i16: return elem<int16_t>(raw, i);
    case RawType::u16: return elem<uint16_t>(raw, i);
    case RawType::i32: return elem<int32_t>(raw, i);
    case RawType::u32: return elem<uint32_t>(raw, i);
    case RawType::i64: return elem<int64_t>(raw, i);
    case RawType::f32: return elem<float>(raw, i);
    case RawType::f64: return elem<double>(raw, i);
  }
  return 0;
}

// The delivered sample computed independently of H5Dataset::transform: stored element at
// multi-index (..., c, ...) goes to (c, spatial...) or, channels-last, (spatial..., c).
void check_transform(const H5Dataset& ds, const std::vector<unsigned char>& raw, const std::vector<float>& x,
                     bool channels_last, int64_t i) {
  const Shape& st = ds.stored_shape();
  const auto ch = ds.layout().axes.find('C');
  const int64_t C = ch == std::string::npos ? 1 : st[ch];
  const int64_t n = numel(st);
  if (n == 0 || C == 0) return;
  const int64_t S = n / C;
  std::vector<int64_t> idx(st.size(), 0);
  for (int64_t k = 0; k < n; ++k) {
    int64_t c = 0, s = 0;
    for (size_t a = 0; a < st.size(); ++a) {
      if (ch != std::string::npos && a == ch) c = idx[a];
      else s = s * st[a] + idx[a];
    }
    bool small = false;
    const double v = raw_value(ds.stored_type(), raw.data(), size_t(k), small);
    float want;
    switch (ds.layout().transform) {
      case Transform::none: want = float(v); break;
      case Transform::log1p: want = small ? float(std::log1p(v)) : std::log1p(float(v)); break;
      default: {
        const float range = ds.norm_max()[size_t(c)] - ds.norm_min()[size_t(c)];
        const float scale = range != 0.f ? 1.f / range : 1.f;
        want = float(v) * scale + -ds.norm_min()[size_t(c)] * scale;
      }
    }
    const int64_t ch_last = ch != std::string::npos && channels_last;
    const float got = x[size_t(ch_last ? s * C + c : c * S + s)];
    const bool ok = (std::isnan(want) && std::isnan(got)) || got == want ||
                    std::fabs(double(got) - double(want)) <= 1e-5 * std::max(1.0, std::fabs(double(want)));
    if (!ok) {
      std::fprintf(stderr, "halo fuzz: sample %lld element %lld: read %g, expected %g (stored %g, %s)\n",
                   (long long)i, (long long)k, double(got), double(want), v, channels_last ? "channels-last" : "channels-first");
      std::abort();
    }
    for (size_t a = st.size(); a-- > 0;) {  // next multi-index, row-major
      if (++idx[a] < st[a]) break;
      idx[a] = 0;
    }
  }
}

// Reads every sample of `files` through `layout`; halo::Error is an accepted outcome.
// Otherwise every read must agree with read_raw() through the reference transform, and
// labels must be the same for every read.
// read_block of the block [n/3, n) along every spatial axis (both orders) must equal the
// crop of the whole sample that the base Dataset::read_block makes.
void check_block_read(const H5Dataset& ds, int64_t i, ReadScratch& scratch) {
  const Shape& s = ds.sample_shape();
  if (s.size() < 2 || s.size() > 4) return;
  SpatialBlock b;
  for (size_t j = 0; j + 1 < s.size(); ++j) b.begin[j] = s[j + 1] / 3, b.end[j] = s[j + 1];
  if (!b.fits(s)) return;  // a zero extent
  std::vector<float> x(size_t(numel(ds.block_shape(b)))), ref(x.size());
  std::vector<unsigned char> y(ds.block_label_bytes(b)), yref(y.size());
  for (bool cl : {false, true}) {
    try {
      ds.Dataset::read_block(i, b, ref.data(), yref.data(), scratch, cl);
    } catch (const BadSampleError&) {
      return;  // read() checks the whole sample: a bad value outside the block stops it alone
    }
    ds.read_block(i, b, x.data(), y.data(), scratch, cl);
    const bool same_x = x.empty() || std::memcmp(x.data(), ref.data(), x.size() * sizeof(float)) == 0;
    if (!same_x || y != yref) {
      std::fprintf(stderr, "halo fuzz: sample %lld block %s: read_block differs from the crop of read()\n",
                   (long long)i, b.str(s.size() - 1).c_str());
      std::abort();
    }
  }
}

void read_all(const std::vector<std::string>& files, const Layout& layout, bool check_values) {
  try {
    H5Dataset ds(files, layout, Driver::posix);
    const int64_t n = std::min<int64_t>(ds.size(), 64);
    ReadScratch scratch;
    for (int64_t i = 0; i < n; ++i) {
      std::vector<float> x(size_t(numel(ds.sample_shape())));
      std::vector<unsigned char> y(ds.label_bytes()), y2(ds.label_bytes()), raw(ds.stored_bytes());
      ds.read_raw(i, raw.data(), y2.data());
      for (bool cl : {false, true}) {
        ds.read(i, x.data(), y.data(), scratch, cl);
        if (check_values) check_transform(ds, raw, x, cl, i);
        if (!y.empty() && std::memcmp(y.data(), y2.data(), y.size()) != 0) {
          std::fprintf(stderr, "halo fuzz: label of sample %lld differs between read() and read_raw()\n", (long long)i);
          std::abort();
        }
      }
      check_block_read(ds, i, scratch);
    }
    ds.close_files();
  } catch (const halo::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  FuzzedDataProvider p(data, size);
  const std::string dir = halo_fuzz::tmp_dir();
  const std::string f0 = dir + "/a.h5", f1 = dir + "/b.h5", stats = dir + "/stats.h5";
  std::vector<std::string> files{f0};
  const uint8_t mode = p.ConsumeIntegral<uint8_t>();
  if (mode & 1) {
    // flipped bytes in the raw data of a valid file
    const bool lbann = mode & 2;
    const std::string valid = dir + "/valid.h5";
    write_valid(valid, lbann);
    halo_fuzz::flip_data_bytes(p, valid, f0, halo_fuzz::data_regions(valid));
    read_all(files, lbann ? cosmoflow_lbann() : cosmoflow_mlperf(), true);
    read_all(files, cosmoflow_raw(2), true);
    return 0;
  }
  write_file(p, f0, false);
  if (p.ConsumeBool()) {
    write_file(p, f1, false);
    files.push_back(f1);
  }
  write_file(p, stats, true);

  std::vector<Layout> layouts;
  try {
    layouts.push_back(detect_layout(f0, p.ConsumeIntegralInRange<int64_t>(0, 5)));
  } catch (const halo::Error&) {
  }
  try {
    layouts.push_back(layout_by_name("packed", f0));
  } catch (const halo::Error&) {
  }
  layouts.push_back(cosmoflow_mlperf());
  layouts.push_back(cosmoflow_lbann());
  layouts.push_back(cosmoflow_raw(p.ConsumeIntegralInRange<int64_t>(1, 8)));
  layouts.push_back(deepcam(p.ConsumeBool() ? stats : ""));
  {
    Layout l;
    l.data = halo_fuzz::pick_name(p, kNames);
    l.label = halo_fuzz::pick_name(p, kNames);
    static const char* const axes[] = {"CDHW", "DHWC", "HWC", "C", "", "CC", "DHW", "W", "CHW", "HWCD"};
    l.axes = axes[p.ConsumeIntegralInRange<int>(0, 9)];
    l.packed = p.ConsumeBool();
    l.transform = Transform(p.ConsumeIntegralInRange<int>(0, 2));
    l.label_kind = LabelKind(p.ConsumeIntegralInRange<int>(0, 1));
    l.subvolume = p.ConsumeBool() ? p.ConsumeIntegralInRange<int64_t>(1, 8) : 0;
    l.stats_file = p.ConsumeBool() ? f0 : stats;
    l.stats_min = halo_fuzz::pick_name(p, {"norm/minval", "climate/minval"});
    l.stats_max = halo_fuzz::pick_name(p, {"norm/maxval", "climate/maxval"});
    layouts.push_back(l);
  }
  for (const auto& l : layouts) read_all(files, l, true);
  return 0;
}
