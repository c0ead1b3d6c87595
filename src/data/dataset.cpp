#include "halo/data/dataset.hpp"

#include "data/h5.hpp"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <type_traits>

#include "halo/util/error.hpp"

namespace halo::data {

struct H5Dataset::OpenFile {
  H5Id file, data, label;
  Shape data_dims, label_dims;
};

namespace {

Shape to_shape(const std::vector<hsize_t>& d) { return Shape(d.begin(), d.end()); }

// Files kept open at once: enough for a packed shard per reader thread and a few more.
constexpr size_t kMaxOpenFiles = 16;

template <class T>
void transform_typed(const T* raw, float* x, int64_t A, int64_t C, int64_t B, Transform tf,
                     const std::vector<float>& mn, const std::vector<float>& mx, bool channels_last) {
  // out[c][a][b] = f_c(raw[a][c][b]), or out[a][b][c] with channels_last; per-channel
  // affine map for minmax.
  std::vector<float> scale(size_t(C), 1.f), shift(size_t(C), 0.f);
  if (tf == Transform::minmax) {
    for (int64_t c = 0; c < C; ++c) {
      float range = mx[size_t(c)] - mn[size_t(c)];
      scale[size_t(c)] = range != 0.f ? 1.f / range : 1.f;  // constant channel: shift to 0 only
      shift[size_t(c)] = -mn[size_t(c)] * scale[size_t(c)];
    }
  }
  if constexpr (std::is_integral<T>::value && sizeof(T) <= 2) {
  if (tf == Transform::log1p) {
    // log1p of 8/16-bit integers through a table: exact, and an order of magnitude faster
    // than calling log1p per voxel (CosmoFlow samples hold 8 M of them).
    static thread_local std::vector<float> lut;
    constexpr int64_t kOff = std::is_signed<T>::value ? (int64_t(1) << (8 * sizeof(T) - 1)) : 0;
    constexpr int64_t kN = int64_t(1) << (8 * sizeof(T));
    if (int64_t(lut.size()) != kN) {
      lut.resize(size_t(kN));
      for (int64_t v = 0; v < kN; ++v) lut[size_t(v)] = float(std::log1p(double(v - kOff)));
    }
    const float* L = lut.data();
    if (channels_last && B == 1) {
      // stored order is delivered order: one streaming table lookup
      const int64_t n = A * C;
      int64_t k = 0;
#if defined(__AVX512F__)
      if constexpr (std::is_same<T, int16_t>::value) {
        // 16 lookups per gather, written with streaming stores: the batch is not read
        // again before the step, and skipping the read-for-ownership of every output line
        // cuts the memory traffic of the conversion by a third.
        for (; k < n && (reinterpret_cast<uintptr_t>(x + k) & 63) != 0; ++k) x[k] = L[int64_t(raw[k]) + kOff];
        const __m512i off = _mm512_set1_epi32(int(kOff));
        for (; k + 16 <= n; k += 16) {
          const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(raw + k));
          const __m512i idx = _mm512_add_epi32(_mm512_maskz_cvtepi16_epi32(__mmask16(0xFFFF), v), off);
          _mm512_stream_ps(x + k, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), __mmask16(0xFFFF), idx, L, 4));
        }
        _mm_sfence();
      }
#endif
      for (; k < n; ++k) x[k] = L[int64_t(raw[k]) + kOff];
    } else if (channels_last) {
      for (int64_t a = 0; a < A; ++a)
        for (int64_t c = 0; c < C; ++c)
          for (int64_t b = 0; b < B; ++b) x[(a * B + b) * C + c] = L[int64_t(raw[(a * C + c) * B + b]) + kOff];
    } else if (B == 1) {
      // blocks of voxels small enough for L1, then one channel at a time: contiguous stores
      // the compiler turns into vector gathers from the table
      constexpr int64_t kBlock = 2048;
      for (int64_t a0 = 0; a0 < A; a0 += kBlock) {
        const int64_t a1 = std::min(A, a0 + kBlock);
        for (int64_t c = 0; c < C; ++c) {
          float* dst = x + c * A;
          const T* src = raw + c;
          for (int64_t a = a0; a < a1; ++a) dst[a] = L[int64_t(src[a * C]) + kOff];
        }
      }
    } else {
      for (int64_t a = 0; a < A; ++a)
        for (int64_t c = 0; c < C; ++c)
          for (int64_t b = 0; b < B; ++b) x[(c * A + a) * B + b] = L[int64_t(raw[(a * C + c) * B + b]) + kOff];
    }
    return;
  }
  }
  auto f = [&](T v, int64_t c) -> float {
    if (tf == Transform::log1p) return std::log1p(float(v));
    return float(v) * scale[size_t(c)] + shift[size_t(c)];
  };
  if (channels_last) {
    for (int64_t a = 0; a < A; ++a)
      for (int64_t c = 0; c < C; ++c) {
        const T* src = raw + (a * C + c) * B;
        for (int64_t b = 0; b < B; ++b) x[(a * B + b) * C + c] = f(src[b], c);
      }
  } else if (B == 1) {
    for (int64_t a = 0; a < A; ++a)
      for (int64_t c = 0; c < C; ++c) x[c * A + a] = f(raw[a * C + c], c);
  } else {
    for (int64_t a = 0; a < A; ++a)
      for (int64_t c = 0; c < C; ++c) {
        const T* src = raw + (a * C + c) * B;
        float* dst = x + (c * A + a) * B;
        for (int64_t b = 0; b < B; ++b) dst[b] = f(src[b], c);
      }
  }
}

// Bad stored values of one sample. The scans are cheap: one pass of compares and ORs (no
// branch, so the compiler vectorises it) over bytes the transform is about to read anyway,
// still in cache; the exact count is taken only once something was found.
struct ValueCheck {
  int64_t nonfinite = 0;  // NaN or +-inf (floating-point storage)
  int64_t negative = 0;   // < 0 under log1p: counts cannot be negative, log1p(-1) = -inf and below is NaN
  bool bad() const { return nonfinite > 0 || negative > 0; }
};

template <class T>
void check_typed(const T* p, int64_t n, bool log1p, ValueCheck& c) {
  if constexpr (std::is_floating_point<T>::value) {
    using U = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
    constexpr U kExp = sizeof(T) == 4 ? U(0x7f800000u) : U(0x7ff0000000000000ull);
    U any = 0;  // all exponent bits set: inf or NaN
    bool neg = false;
    for (int64_t k = 0; k < n; ++k) {
      U b;
      std::memcpy(&b, p + k, sizeof b);
      any |= U((b & kExp) == kExp);
    }
    if (log1p) {
      T mn = T(0);
      for (int64_t k = 0; k < n; ++k) mn = std::min(mn, p[k]);  // NaN never wins a min; counted above
      neg = mn < T(0);
    }
    if (any || neg)
      for (int64_t k = 0; k < n; ++k) {
        U b;
        std::memcpy(&b, p + k, sizeof b);
        if ((b & kExp) == kExp) ++c.nonfinite;
        else if (log1p && p[k] < T(0)) ++c.negative;
      }
  } else if constexpr (std::is_signed<T>::value) {
    if (!log1p) return;  // integers convert to finite floats: nothing to check
    T mn = T(0);
    for (int64_t k = 0; k < n; ++k) mn = std::min(mn, p[k]);
    if (mn < T(0))
      for (int64_t k = 0; k < n; ++k) c.negative += p[k] < T(0);
  } else {
    (void)p, (void)n, (void)log1p, (void)c;  // unsigned: never negative, always finite
  }
}

void check_raw(RawType t, const void* raw, int64_t n, bool log1p, ValueCheck& c) {
  switch (t) {
    case RawType::i8: return check_typed(static_cast<const int8_t*>(raw), n, log1p, c);
    case RawType::u8: return check_typed(static_cast<const uint8_t*>(raw), n, log1p, c);
    case RawType::i16: return check_typed(static_cast<const int16_t*>(raw), n, log1p, c);
    case RawType::u16: return check_typed(static_cast<const uint16_t*>(raw), n, log1p, c);
    case RawType::i32: return check_typed(static_cast<const int32_t*>(raw), n, log1p, c);
    case RawType::u32: return check_typed(static_cast<const uint32_t*>(raw), n, log1p, c);
    case RawType::i64: return check_typed(static_cast<const int64_t*>(raw), n, log1p, c);
    case RawType::f32: return check_typed(static_cast<const float*>(raw), n, log1p, c);
    case RawType::f64: return check_typed(static_cast<const double*>(raw), n, log1p, c);
  }
}

// Throws BadSampleError for what the scans of read() found in sample i (in the block that
// `note` names, if any), or for its label.
void check_sample(const H5Dataset& ds, int64_t i, const ValueCheck& c, const void* y, const std::string& note) {
  const Layout& l = ds.layout();
  const std::string& file = ds.files().at(size_t(ds.ref(i).file));
  if (c.nonfinite > 0)
    throw BadSampleError(file, l.data, i, str(c.nonfinite, " NaN or infinite value(s)", note));
  if (c.negative > 0)
    throw BadSampleError(file, l.data, i,
                         str(c.negative, " negative count(s)", note, " (the log1p transform needs counts >= 0)"));
  // Integer masks are always finite; their range is the loss's business (labels equal to
  // its ignore_index, e.g. -100, are valid), and halo-data verify reports them.
  if (l.label_kind == LabelKind::vector) {
    ValueCheck yc;
    check_typed(static_cast<const float*>(y), numel(ds.label_shape()), false, yc);
    if (yc.nonfinite > 0)
      throw BadSampleError(file, l.label, i, str(yc.nonfinite, " NaN or infinite target value(s)"));
  }
}

}  // namespace

// What the constructor reads from the files; everything else follows from it and the layout.
struct H5Dataset::Index {
  int64_t files = 0;
  Shape data_dims, label_dims;  // of the first file (packed: N first)
  RawType type = RawType::f32;
  std::vector<int64_t> rows;    // packed: samples of each file, else empty
  std::vector<float> min, max;  // minmax statistics, else empty
};

namespace {

// The index as text: one field per line, lists as their length then their values. Floats go
// as their bit patterns so the other ranks get exactly rank 0's statistics.
constexpr const char* kIndexTag = "halo-dataset-index-1";

template <class T>
void put_list(std::ostream& o, const std::vector<T>& v) {
  o << v.size();
  for (const T& x : v) o << ' ' << x;
  o << '\n';
}

template <class T>
std::vector<T> get_list(std::istream& in, size_t max) {
  size_t n = 0;
  in >> n;
  HALO_CHECK_T(IOError, in && n <= max, "dataset index: malformed list");
  std::vector<T> v(n);
  for (T& x : v) in >> x;
  return v;
}

std::vector<uint32_t> float_bits(const std::vector<float>& v) {
  std::vector<uint32_t> b(v.size());
  if (!v.empty()) std::memcpy(b.data(), v.data(), v.size() * sizeof(float));
  return b;
}

std::vector<float> bits_float(const std::vector<uint32_t>& b) {
  std::vector<float> v(b.size());
  if (!b.empty()) std::memcpy(v.data(), b.data(), b.size() * sizeof(float));
  return v;
}

// The first packed shard holds N samples of the layout's axes, and labels (read_index()
// checks it before comparing the others with it; setup() again for an index from elsewhere).
void check_packed_dims(const Shape& data_dims, const Shape& label_dims, const Layout& l, const std::string& where) {
  const size_t ax = l.axes.size();
  HALO_CHECK_T(IOError, data_dims.size() == ax + 1 && !label_dims.empty(), where, ": packed shard holds ",
               to_string(data_dims), " but the layout's axes '", l.axes, "' need ", ax + 1, " dimensions (N first)");
}

RawType raw_type_from_name(const std::string& s) {
  for (RawType t : {RawType::i8, RawType::u8, RawType::i16, RawType::u16, RawType::i32, RawType::u32, RawType::i64,
                    RawType::f32, RawType::f64})
    if (s == name(t)) return t;
  throw IOError(str("dataset index: unknown element type '", s, "'"));
}

}  // namespace

// One code path: both constructors go through setup(); only where the index comes from differs.
H5Dataset::H5Dataset(std::vector<std::string> files, Layout layout, Driver driver)
    : files_(std::move(files)), layout_(std::move(layout)), driver_(driver) {
  HALO_CHECK_T(IOError, !files_.empty(), "dataset (", layout_.format, "): no files given");
  setup(read_index());
}

H5Dataset::H5Dataset(std::vector<std::string> files, Layout layout, const std::string& index, Driver driver)
    : files_(std::move(files)), layout_(std::move(layout)), driver_(driver) {
  HALO_CHECK_T(IOError, !files_.empty(), "dataset (", layout_.format, "): no files given");
  std::istringstream in(index);
  std::string tag, type;
  Index ix;
  in >> tag >> ix.files;
  HALO_CHECK_T(IOError, in && tag == kIndexTag, "dataset index: not an H5Dataset::index()");
  const size_t max = index.size();  // a value takes at least two characters
  ix.data_dims = get_list<int64_t>(in, max);
  ix.label_dims = get_list<int64_t>(in, max);
  in >> type;
  ix.type = raw_type_from_name(type);
  ix.rows = get_list<int64_t>(in, max);
  ix.min = bits_float(get_list<uint32_t>(in, max));
  ix.max = bits_float(get_list<uint32_t>(in, max));
  HALO_CHECK_T(IOError, bool(in), "dataset index: malformed");
  HALO_CHECK_T(IOError, ix.files == int64_t(files_.size()), "dataset index: made for ", ix.files, " files, given ",
               files_.size());
  setup(std::move(ix));
}

std::string H5Dataset::index() const {
  std::ostringstream o;
  o << kIndexTag << ' ' << files_.size() << '\n';
  put_list(o, file_data_dims_);
  Shape label_dims = stored_label_shape_;
  if (layout_.packed) label_dims.insert(label_dims.begin(), rows_.at(0));
  put_list(o, label_dims);
  o << name(stored_type_) << '\n';
  put_list(o, rows_);
  put_list(o, float_bits(min_));
  put_list(o, float_bits(max_));
  return o.str();
}

std::string H5Dataset::stats_path() const {
  if (!layout_.stats_file.empty()) return layout_.stats_file;
  return (std::filesystem::path(files_[0]).parent_path() / "stats.h5").string();
}

H5Dataset::Index H5Dataset::read_index() const {
  std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  Index ix;
  ix.files = int64_t(files_.size());
  {
    OpenFile& of = open(0);
    ix.data_dims = of.data_dims;
    ix.label_dims = of.label_dims;
    ix.type = raw_type_of(of.data.get(), where(0, layout_.data));
  }
  if (layout_.packed) {
    // Every shard's row count (and its shape, against the first one's).
    const size_t ax = layout_.axes.size();
    check_packed_dims(ix.data_dims, ix.label_dims, layout_, where(0, layout_.data));
    const Shape first(ix.data_dims.begin() + 1, ix.data_dims.end());
    for (int32_t f = 0; f < int32_t(files_.size()); ++f) {
      OpenFile& of = open(f);
      Shape rows(of.data_dims.begin() + (of.data_dims.empty() ? 0 : 1), of.data_dims.end());
      HALO_CHECK_T(IOError, of.data_dims.size() == ax + 1 && rows == first, where(f, layout_.data), ": samples of shape ",
                   to_string(rows), " but ", files_[0], " holds ", to_string(first));
      HALO_CHECK_T(IOError, !of.label_dims.empty() && of.label_dims[0] == of.data_dims[0], where(f, layout_.label),
                   ": ", of.label_dims.empty() ? 0 : of.label_dims[0], " labels for ", of.data_dims[0], " samples");
      ix.rows.push_back(of.data_dims[0]);
    }
  }
  close_files();
  if (layout_.transform == Transform::minmax) {
    const std::string stats = stats_path();
    H5Id sf = open_file(stats, Driver::posix);
    ix.min = read_floats(sf.get(), layout_.stats_min, stats);
    ix.max = read_floats(sf.get(), layout_.stats_max, stats);
  }
  return ix;
}

void H5Dataset::setup(Index ix) {
  file_data_dims_ = std::move(ix.data_dims);
  stored_type_ = ix.type;
  rows_ = std::move(ix.rows);
  min_ = std::move(ix.min);
  max_ = std::move(ix.max);
  const Shape& label_dims = ix.label_dims;
  const size_t ax = layout_.axes.size();
  if (layout_.packed) {
    check_packed_dims(file_data_dims_, label_dims, layout_, where(0, layout_.data));
    HALO_CHECK_T(IOError, rows_.size() == files_.size(), "dataset index: row counts of ", rows_.size(),
                 " packed files for ", files_.size(), " files");
    stored_shape_.assign(file_data_dims_.begin() + 1, file_data_dims_.end());
    stored_label_shape_.assign(label_dims.begin() + 1, label_dims.end());
    for (int32_t f = 0; f < int32_t(files_.size()); ++f)
      for (int64_t k = 0; k < rows_[size_t(f)]; ++k) samples_.push_back(SampleRef{f, k, {0, 0, 0}});
  } else {
    HALO_CHECK_T(IOError, file_data_dims_.size() == ax, where(0, layout_.data), ": shape ",
                 to_string(file_data_dims_), " does not match the layout's axes '", layout_.axes, "'");
    stored_shape_ = file_data_dims_;
    stored_label_shape_ = label_dims;
    if (layout_.subvolume > 0) {
      HALO_CHECK_T(IOError, layout_.label_kind == LabelKind::vector, "dataset ", layout_.format,
                   ": sub-volumes need one label vector per file");
      std::vector<int64_t> counts;
      for (size_t k = 0; k < ax; ++k) {
        if (layout_.axes[k] == 'C') continue;
        HALO_CHECK_T(IOError, counts.size() < 3, "dataset ", layout_.format, ": sub-volumes cut at most 3 axes");
        int64_t e = layout_.subvolume, n = stored_shape_[k];
        HALO_CHECK_T(IOError, n % e == 0, where(0, layout_.data), ": extent ", n, " of axis ", layout_.axes[k],
                     " is not a multiple of the sub-volume edge ", e);
        counts.push_back(n / e);
        stored_shape_[k] = e;
      }
      while (counts.size() < 3) counts.push_back(1);
      for (int32_t f = 0; f < int32_t(files_.size()); ++f)
        for (int64_t i = 0; i < counts[0]; ++i)
          for (int64_t j = 0; j < counts[1]; ++j)
            for (int64_t k = 0; k < counts[2]; ++k)
              samples_.push_back(SampleRef{f, 0, {i * layout_.subvolume, j * layout_.subvolume, k * layout_.subvolume}});
    } else {
      for (int32_t f = 0; f < int32_t(files_.size()); ++f) samples_.push_back(SampleRef{f, 0, {0, 0, 0}});
    }
  }
  // delivered shapes
  channel_axis_ = int(layout_.axes.find('C'));
  if (size_t(channel_axis_) == std::string::npos) channel_axis_ = -1;
  int64_t C = channel_axis_ >= 0 ? stored_shape_[size_t(channel_axis_)] : 1;
  sample_shape_ = {C};
  for (size_t k = 0; k < ax; ++k)
    if (int(k) != channel_axis_) sample_shape_.push_back(stored_shape_[k]);
  if (layout_.label_kind == LabelKind::vector) {
    label_shape_ = {numel(stored_label_shape_)};
  } else {
    label_shape_ = stored_label_shape_;
    Shape spatial(sample_shape_.begin() + 1, sample_shape_.end());
    HALO_CHECK_T(IOError, label_shape_ == spatial, where(0, layout_.label), ": mask of shape ",
                 to_string(label_shape_), " does not cover the sample's grid ", to_string(spatial));
  }
  if (layout_.transform == Transform::minmax)
    HALO_CHECK_T(IOError, int64_t(min_.size()) == C && int64_t(max_.size()) == C, "stats file ", stats_path(), ": ",
                 min_.size(), " minima and ", max_.size(), " maxima for ", C, " channels");
}

H5Dataset::~H5Dataset() { close_files(); }

void H5Dataset::close_files() const {
  std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  open_.clear();
  open_order_.clear();
}

std::string H5Dataset::describe(int64_t i) const {
  const SampleRef& r = ref(i);
  std::string out = str("file ", files_.at(size_t(r.file)));
  if (layout_.packed) out += str(", row ", r.index);
  if (layout_.subvolume > 0) out += str(", cube at ", r.origin[0], ",", r.origin[1], ",", r.origin[2]);
  return out;
}

std::string H5Dataset::where(int32_t file, const std::string& dset) const {
  return str("file ", files_.at(size_t(file)), ", dataset '", dset, "'");
}

H5Dataset::OpenFile& H5Dataset::open(int32_t file) const {
  auto it = open_.find(file);
  if (it != open_.end()) return *it->second;
  if (open_.size() >= kMaxOpenFiles) {
    open_.erase(open_order_.front());
    open_order_.erase(open_order_.begin());
  }
  auto of = std::make_unique<OpenFile>();
  const std::string& path = files_.at(size_t(file));
  of->file = open_file(path, driver_);
  of->data = open_dataset(of->file.get(), layout_.data, path);
  of->label = open_dataset(of->file.get(), layout_.label, path);
  of->data_dims = to_shape(dataset_dims(of->data.get()));
  of->label_dims = to_shape(dataset_dims(of->label.get()));
  OpenFile& ref = *of;
  open_[file] = std::move(of);
  open_order_.push_back(file);
  return ref;
}

H5Dataset::Box H5Dataset::whole_box() const { return Box{Shape(stored_shape_.size(), 0), stored_shape_}; }

H5Dataset::Box H5Dataset::block_box(const SpatialBlock& b) const {
  Box box = whole_box();
  size_t j = 0;  // spatial axes in stored order are the block's axes
  for (size_t k = 0; k < stored_shape_.size(); ++k) {
    if (int(k) == channel_axis_) continue;
    box.start[k] = b.begin[j];
    box.count[k] = b.extent(j);
    ++j;
  }
  return box;
}

std::string H5Dataset::block_note(const SpatialBlock* block) const {
  return block ? str(", block ", block->str(sample_shape_.size() - 1)) : std::string();
}

void H5Dataset::read_raw(int64_t i, void* raw, void* y) const { read_stored(i, whole_box(), nullptr, raw, y, true); }

void H5Dataset::read_stored(int64_t i, const Box& box, const SpatialBlock* block, void* raw, void* y, bool last) const {
  const SampleRef& s = ref(i);
  std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  OpenFile& of = open(s.file);
  const size_t ax = layout_.axes.size();
  // the file must look like the first one: a mislabelled or foreign file stops here
  Shape expect_data = file_data_dims_, got_data = of.data_dims;
  if (layout_.packed) {
    expect_data.erase(expect_data.begin());
    if (!got_data.empty()) got_data.erase(got_data.begin());
  }
  HALO_CHECK_T(IOError, got_data == expect_data, where(s.file, layout_.data), ": shape ", to_string(of.data_dims),
               ", expected ", to_string(expect_data), layout_.packed ? " per sample" : "", " (as in ", files_[0], ")");
  Shape got_label = of.label_dims;
  if (layout_.packed && !got_label.empty()) got_label.erase(got_label.begin());
  HALO_CHECK_T(IOError, numel(got_label) == numel(stored_label_shape_) && (layout_.packed || got_label.size() == stored_label_shape_.size()),
               where(s.file, layout_.label), ": shape ", to_string(of.label_dims), ", expected ",
               to_string(stored_label_shape_), layout_.packed ? " per sample" : "");

  // data hyperslab: the box, shifted to the sample's row (packed) or cube (sub-volumes)
  const size_t rank = of.data_dims.size();
  std::vector<hsize_t> start(rank, 0), count(rank, 1);
  const size_t off = layout_.packed ? 1 : 0;
  if (layout_.packed) start[0] = hsize_t(s.index);
  for (size_t k = 0, j = 0; k < ax; ++k) {
    start[k + off] = hsize_t(box.start[k]);
    count[k + off] = hsize_t(box.count[k]);
    if (layout_.axes[k] == 'C') continue;
    if (layout_.subvolume > 0) start[k + off] += hsize_t(s.origin[j]);
    ++j;
  }
  {
    H5Id fspace{H5Dget_space(of.data.get()), H5Sclose};
    H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr);
    H5Id mspace{H5Screate_simple(int(rank), count.data(), nullptr), H5Sclose};
    herr_t rc = H5Dread(of.data.get(), native_type(stored_type_), mspace.get(), fspace.get(), H5P_DEFAULT, raw);
    HALO_CHECK_T(IOError, rc >= 0, where(s.file, layout_.data), ": read of sample ", i, block_note(block),
                 " failed (file truncated or corrupt?)");
  }
  if (y != nullptr) read_label(i, block, y);
  // one-sample files are not revisited within an epoch: close them after their last read
  if (last && !layout_.packed && layout_.subvolume == 0) {
    open_.erase(s.file);
    open_order_.erase(std::remove(open_order_.begin(), open_order_.end(), s.file), open_order_.end());
  }
}

void H5Dataset::read_label(int64_t i, const SpatialBlock* block, void* y) const {
  const SampleRef& s = ref(i);
  std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  OpenFile& of = open(s.file);
  const bool mask = layout_.label_kind == LabelKind::mask;
  hid_t ltype = mask ? H5T_NATIVE_INT32 : H5T_NATIVE_FLOAT;
  herr_t rc;
  if (layout_.packed || (mask && block)) {
    // a row of a packed shard and/or the block of a class map (whose axes are the sample's
    // spatial axes, in order: setup() checks it)
    const size_t lr = of.label_dims.size(), off = layout_.packed ? 1 : 0;
    std::vector<hsize_t> ls(lr, 0), lc(of.label_dims.begin(), of.label_dims.end());
    if (layout_.packed) {
      ls[0] = hsize_t(s.index);
      lc[0] = 1;
    }
    if (mask && block)
      for (size_t j = 0; j + off < lr && j < 3; ++j) {
        ls[j + off] = hsize_t(block->begin[j]);
        lc[j + off] = hsize_t(block->extent(j));
      }
    H5Id fspace{H5Dget_space(of.label.get()), H5Sclose};
    H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, ls.data(), nullptr, lc.data(), nullptr);
    H5Id mspace{H5Screate_simple(int(lr), lc.data(), nullptr), H5Sclose};
    rc = H5Dread(of.label.get(), ltype, mspace.get(), fspace.get(), H5P_DEFAULT, y);
  } else {
    rc = H5Dread(of.label.get(), ltype, H5S_ALL, H5S_ALL, H5P_DEFAULT, y);
  }
  HALO_CHECK_T(IOError, rc >= 0, where(s.file, layout_.label), ": read of sample ", i, mask ? block_note(block) : "",
               " failed (file truncated or corrupt?)");
}

void H5Dataset::transform(const void* raw, float* x, bool channels_last, int64_t rows) const {
  Shape stored = stored_shape_;
  if (rows > 0 && !stored.empty()) stored[0] = rows;
  transform_box(raw, x, stored, channels_last);
}

void H5Dataset::transform_box(const void* raw, float* x, const Shape& stored, bool channels_last) const {
  int64_t A = 1, C = 1, B = 1;
  for (size_t k = 0; k < stored.size(); ++k) {
    const int64_t n = stored[k];
    if (int(k) < channel_axis_ || channel_axis_ < 0) A *= n;
    else if (int(k) == channel_axis_) C = n;
    else B *= n;
  }
  if (channel_axis_ < 0) {  // no channel axis: a plain copy, whatever the format
    std::swap(A, B);
    channels_last = false;
  }
  Transform tf = layout_.transform;
  switch (stored_type_) {
    case RawType::i8: return transform_typed(static_cast<const int8_t*>(raw), x, A, C, B, tf, min_, max_, channels_last);
    case RawType::u8: return transform_typed(static_cast<const uint8_t*>(raw), x, A, C, B, tf, min_, max_, channels_last);
    case RawType::i16: return transform_typed(static_cast<const int16_t*>(raw), x, A, C, B, tf, min_, max_, channels_last);
    case RawType::u16: return transform_typed(static_cast<const uint16_t*>(raw), x, A, C, B, tf, min_, max_, channels_last);
    case RawType::i32: return transform_typed(static_cast<const int32_t*>(raw), x, A, C, B, tf, min_, max_, channels_last);
    case RawType::u32: return transform_typed(static_cast<const uint32_t*>(raw), x, A, C, B, tf, min_, max_, channels_last);
    case RawType::i64: return transform_typed(static_cast<const int64_t*>(raw), x, A, C, B, tf, min_, max_, channels_last);
    case RawType::f32: return transform_typed(static_cast<const float*>(raw), x, A, C, B, tf, min_, max_, channels_last);
    case RawType::f64: return transform_typed(static_cast<const double*>(raw), x, A, C, B, tf, min_, max_, channels_last);
  }
}

void H5Dataset::read(int64_t i, float* x, void* y, ReadScratch& scratch, bool channels_last) const {
  read_box(i, whole_box(), nullptr, x, y, scratch, channels_last);
}

void H5Dataset::read_block(int64_t i, const SpatialBlock& b, float* x, void* y, ReadScratch& scratch,
                           bool channels_last) const {
  if (!b.fits(sample_shape_)) check_block(b, sample_shape_, describe(i));  // names the sample only when it throws
  read_box(i, block_box(b), &b, x, y, scratch, channels_last);
}

void H5Dataset::read_box(int64_t i, const Box& box, const SpatialBlock* block, float* x, void* y, ReadScratch& scratch,
                         bool channels_last) const {
  const bool log1p = layout_.transform == Transform::log1p;
  const int64_t values = numel(box.count);
  ValueCheck vc;
  auto check = [&] {
    if (check_values_) check_sample(*this, i, vc, y, block ? str(" in block ", block->str(sample_shape_.size() - 1)) : "");
  };
  // float32 stored in the delivered axis order without a transform: read in place
  const int last_axis = int(stored_shape_.size()) - 1;
  const bool same_order = channel_axis_ < 0 || (channels_last ? channel_axis_ == last_axis : channel_axis_ == 0);
  if (stored_type_ == RawType::f32 && layout_.transform == Transform::none && same_order) {
    const int64_t n0 = box.count.empty() ? 1 : box.count[0];
    const int64_t n1 = box.count.size() > 1 ? box.count[1] : 1;
    if (!check_values_ || n1 <= 1) {
      read_stored(i, box, block, x, y, true);
      if (check_values_) check_typed(x, values, false, vc);
      return check();
    }
    // Checked: read straight into x in slabs of the second axis (one index of the first at a
    // time: the channel of (C,D,H,W) volumes) of about 1 MiB, each scanned while still in
    // cache; a scan of the whole sample afterwards reads it back from DRAM (+50-80 % on
    // 128^3 LBANN volumes; in slabs +25 %: the read is a copy out of the page cache, so even
    // an L2-speed scan is a quarter of it; docs/performance.md).
    constexpr int64_t kSlabFloats = int64_t(1) << 18;
    const int64_t row_floats = values / (n0 * n1);
    const int64_t rows = std::max<int64_t>(1, kSlabFloats / std::max<int64_t>(row_floats, 1));
    Box slab = box;
    slab.count[0] = 1;
    for (int64_t a = 0; a < n0; ++a)
      for (int64_t r0 = 0; r0 < n1; r0 += rows) {
        const int64_t n = std::min(rows, n1 - r0);
        slab.start[0] = box.start[0] + a;
        slab.start[1] = box.start[1] + r0;
        slab.count[1] = n;
        float* dst = x + (a * n1 + r0) * row_floats;
        read_stored(i, slab, block, dst, a == 0 && r0 == 0 ? y : nullptr, a + 1 == n0 && r0 + n >= n1);
        check_typed(dst, n * row_floats, false, vc);
      }
    return check();
  }
  const int64_t first = box.count.empty() ? 1 : box.count[0];
  if (same_order && channel_axis_ != 0 && first > 1) {
    // Slabs of the first axis small enough for L2: each is converted right after its read,
    // while still in cache, so the stored bytes never make a round trip through DRAM. The
    // HDF5 lock is held per slab, so another reader thread converts while this one reads.
    constexpr size_t kSlabBytes = size_t(256) << 10;
    const int64_t row_values = values / first;  // = delivered floats per row
    const size_t row_bytes = size_t(row_values) * raw_size(stored_type_);
    const int64_t rows = std::max<int64_t>(1, int64_t(kSlabBytes / std::max<size_t>(row_bytes, 1)));
    if (scratch.raw.size() < size_t(rows) * row_bytes) scratch.raw.resize(size_t(rows) * row_bytes);
    Box slab = box;
    for (int64_t r0 = 0; r0 < first; r0 += rows) {
      const int64_t n = std::min(rows, first - r0);
      slab.start[0] = box.start[0] + r0;
      slab.count[0] = n;
      read_stored(i, slab, block, scratch.raw.data(), r0 == 0 ? y : nullptr, r0 + n >= first);
      if (check_values_) check_raw(stored_type_, scratch.raw.data(), n * row_values, log1p, vc);
      transform_box(scratch.raw.data(), x + r0 * row_values, slab.count, channels_last);
    }
    return check();
  }
  const size_t bytes = size_t(values) * raw_size(stored_type_);
  if (scratch.raw.size() < bytes) scratch.raw.resize(bytes);
  read_stored(i, box, block, scratch.raw.data(), y, true);
  if (check_values_) {
    check_raw(stored_type_, scratch.raw.data(), values, log1p, vc);
    check();
  }
  transform_box(scratch.raw.data(), x, box.count, channels_last);
}

}  // namespace halo::data
