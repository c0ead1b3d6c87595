// SpatialBlock and the block reads every Dataset has: the default read_block reads the whole
// sample and crops it (H5Dataset overrides it with a hyperslab read, dataset.cpp).
#include <cstring>

#include "halo/data/source.hpp"

namespace halo::data {

namespace {

size_t spatial_axes(const Shape& sample_shape) { return sample_shape.empty() ? 0 : sample_shape.size() - 1; }

// Copies the box [begin, begin + count) of a row-major 4-D array of `elem`-byte values into
// a dense array: whole runs of the last axis at a time.
void copy_box(const unsigned char* src, const std::array<int64_t, 4>& dims, const std::array<int64_t, 4>& begin,
              const std::array<int64_t, 4>& count, unsigned char* dst, size_t elem) {
  const size_t run = size_t(count[3]) * elem;
  if (run == 0) return;  // no channels: nothing to copy (and the buffers may be null)
  for (int64_t a = 0; a < count[0]; ++a)
    for (int64_t b = 0; b < count[1]; ++b)
      for (int64_t c = 0; c < count[2]; ++c) {
        const int64_t row = ((begin[0] + a) * dims[1] + begin[1] + b) * dims[2] + begin[2] + c;
        std::memcpy(dst, src + size_t(row * dims[3] + begin[3]) * elem, run);
        dst += run;
      }
}

// Crops block `b` out of a whole sample held in (C, spatial...) order, or (spatial..., C)
// with `channels_last`, into `out`. A label map is cropped as a sample with C = 1.
void crop(const void* whole, const Shape& sample_shape, const SpatialBlock& b, void* out, bool channels_last,
          size_t elem) {
  const size_t k = spatial_axes(sample_shape);
  std::array<int64_t, 4> dims{1, 1, 1, 1}, begin{0, 0, 0, 0}, count{1, 1, 1, 1};
  // the spatial axes end next to the channel axis (channels-last) or at the last axis, so
  // the unused ones (extent 1) come first and the copied runs stay as long as they can be
  const size_t ch = channels_last ? 3 : 0, first = (channels_last ? 3 : 4) - k;
  dims[ch] = count[ch] = sample_shape[0];
  for (size_t j = 0; j < k; ++j) {
    dims[first + j] = sample_shape[j + 1];
    begin[first + j] = b.begin[j];
    count[first + j] = b.extent(j);
  }
  copy_box(static_cast<const unsigned char*>(whole), dims, begin, count, static_cast<unsigned char*>(out), elem);
}

}  // namespace

int64_t SpatialBlock::numel(size_t spatial_axes) const {
  int64_t n = 1;
  for (size_t j = 0; j < spatial_axes && j < 3; ++j) n *= extent(j);
  return n;
}

std::string SpatialBlock::str(size_t spatial_axes) const {
  std::string s = "[";
  for (size_t j = 0; j < spatial_axes && j < 3; ++j)
    s += halo::str(j ? ", " : "", begin[j], ":", end[j]);
  return s + "]";
}

SpatialBlock SpatialBlock::whole(const Shape& sample_shape) {
  const size_t k = spatial_axes(sample_shape);
  HALO_CHECK_SHAPE(k >= 1 && k <= 3, "SpatialBlock::whole: sample shape ", to_string(sample_shape),
                   " needs 1 to 3 spatial axes after C");
  SpatialBlock b;
  for (size_t j = 0; j < k; ++j) b.end[j] = sample_shape[j + 1];
  return b;
}

bool SpatialBlock::fits(const Shape& sample_shape) const {
  const size_t k = spatial_axes(sample_shape);
  if (k < 1 || k > 3) return false;
  for (size_t j = 0; j < k; ++j)
    if (begin[j] < 0 || begin[j] >= end[j] || end[j] > sample_shape[j + 1]) return false;
  return true;
}

void check_block(const SpatialBlock& b, const Shape& sample_shape, const std::string& where) {
  if (b.fits(sample_shape)) return;
  const size_t k = spatial_axes(sample_shape);
  const std::string pre = where.empty() ? "" : where + ": ";
  HALO_CHECK_SHAPE(k >= 1 && k <= 3, pre, "block ", b.str(), ": samples of shape ", to_string(sample_shape),
                   " (C, spatial...) have ", k, " spatial axes; blocks cut 1 to 3");
  for (size_t j = 0; j < k; ++j)
    HALO_CHECK_SHAPE(0 <= b.begin[j] && b.begin[j] < b.end[j] && b.end[j] <= sample_shape[j + 1], pre, "block ",
                     b.str(k), " is ", b.begin[j] >= b.end[j] ? "empty" : "outside the sample", " along spatial axis ",
                     j, " (sample shape ", to_string(sample_shape), ", (C, spatial...): needs 0 <= begin < end <= ",
                     sample_shape[j + 1], ")");
}

bool Dataset::label_is_map() const {
  const Shape& s = sample_shape();
  return label_dtype() == DType::i32 && !s.empty() && label_shape() == Shape(s.begin() + 1, s.end());
}

Shape Dataset::block_shape(const SpatialBlock& b) const {
  const Shape& s = sample_shape();
  check_block(b, s);
  Shape out{s[0]};
  for (size_t j = 0; j + 1 < s.size(); ++j) out.push_back(b.extent(j));
  return out;
}

Shape Dataset::block_label_shape(const SpatialBlock& b) const {
  Shape x = block_shape(b);
  if (!label_is_map()) return label_shape();
  return Shape(x.begin() + 1, x.end());
}

size_t Dataset::block_stored_bytes(const SpatialBlock& b) const {
  const Shape& s = sample_shape();
  const int64_t whole = numel(Shape(s.begin() + 1, s.end()));
  const int64_t part = numel(block_shape(b)) / s[0];
  return whole > 0 ? size_t(double(stored_bytes()) * double(part) / double(whole)) : 0;
}

void Dataset::read_block(int64_t i, const SpatialBlock& b, float* x, void* y, ReadScratch& scratch,
                         bool channels_last) const {
  const Shape& s = sample_shape();
  if (!b.fits(s)) check_block(b, s, describe(i));  // names the sample only when it throws
  if (b == SpatialBlock::whole(s)) return read(i, x, y, scratch, channels_last);
  const bool map = label_is_map();
  scratch.sample.resize(size_t(numel(s)));
  if (map) scratch.label.resize(label_bytes());
  read(i, scratch.sample.data(), map ? static_cast<void*>(scratch.label.data()) : y, scratch, channels_last);
  crop(scratch.sample.data(), s, b, x, channels_last, sizeof(float));
  if (map) {
    Shape one_channel = s;
    one_channel[0] = 1;
    crop(scratch.label.data(), one_channel, b, y, false, sizeof(int32_t));
  }
}

}  // namespace halo::data
