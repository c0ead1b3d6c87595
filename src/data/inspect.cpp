#include "halo/data/inspect.hpp"

#include <cmath>

#include "halo/util/error.hpp"

namespace halo::data {

namespace {
// Sums around a shift (the first value seen) keep the variance accurate in double.
struct Acc {
  double n = 0, s = 0, ss = 0, shift = 0, mn = INFINITY, mx = -INFINITY;
  bool first = true;
  void add(double v) {
    if (first) shift = v, first = false;
    double d = v - shift;
    n += 1, s += d, ss += d * d;
    mn = std::min(mn, v), mx = std::max(mx, v);
  }
  ChannelStats get() const {
    ChannelStats c;
    if (n == 0) return c;
    double m = s / n;
    c.min = mn, c.max = mx, c.mean = shift + m, c.std = std::sqrt(std::max(0.0, ss / n - m * m));
    return c;
  }
};

void describe(const std::string& file, const Layout& l, FileReport& r) {
  H5Id f = open_file(file, Driver::posix);
  H5Id d = open_dataset(f.get(), l.data, file), y = open_dataset(f.get(), l.label, file);
  auto dd = dataset_dims(d.get()), yd = dataset_dims(y.get());
  r.data_dims.assign(dd.begin(), dd.end());
  r.label_dims.assign(yd.begin(), yd.end());
  r.data_dtype = type_name(d.get());
  r.label_dtype = type_name(y.get());
}
}  // namespace

FileReport inspect_file(const std::string& file, const Layout& layout_in) {
  Layout layout = layout_in.format.empty() ? detect_layout(file) : layout_in;
  FileReport r;
  r.file = file;
  r.layout = layout;
  describe(file, layout, r);
  H5Dataset ds({file}, layout, Driver::posix);
  r.samples = ds.size();
  r.sample_shape = ds.sample_shape();
  r.label_shape = ds.label_shape();
  const int64_t C = ds.sample_shape()[0], V = numel(ds.sample_shape()) / C, L = numel(ds.label_shape());
  std::vector<Acc> ch(static_cast<size_t>(C)), lab(layout.label_kind == LabelKind::vector ? size_t(L) : 0);
  std::vector<double> counts(size_t(std::max(layout.num_classes, 1)), 0.0);
  double pixels = 0;
  std::vector<float> x(size_t(C * V));
  std::vector<int32_t> ybuf(static_cast<size_t>(L));
  ReadScratch scratch;
  for (int64_t i = 0; i < ds.size(); ++i) {
    ds.read(i, x.data(), ybuf.data(), scratch);
    for (int64_t c = 0; c < C; ++c)
      for (int64_t v = 0; v < V; ++v) ch[size_t(c)].add(x[size_t(c * V + v)]);
    if (layout.label_kind == LabelKind::vector) {
      const float* yf = reinterpret_cast<const float*>(ybuf.data());
      for (int64_t k = 0; k < L; ++k) lab[size_t(k)].add(yf[k]);
    } else {
      for (int32_t v : ybuf) {
        if (v >= 0 && v < int32_t(counts.size())) counts[size_t(v)] += 1;
        pixels += 1;
      }
    }
  }
  for (auto& a : ch) r.channels.push_back(a.get());
  for (auto& a : lab) r.label_components.push_back(a.get());
  if (layout.label_kind == LabelKind::mask)
    for (double c : counts) r.class_fractions.push_back(pixels > 0 ? c / pixels : 0.0);
  return r;
}

std::vector<BadSample> verify_file(const std::string& file, const Layout& layout_in) {
  std::vector<BadSample> bad;
  std::unique_ptr<H5Dataset> ds;
  try {
    Layout layout = layout_in.format.empty() ? detect_layout(file) : layout_in;
    ds = std::make_unique<H5Dataset>(std::vector<std::string>{file}, layout, Driver::posix);
  } catch (const std::exception& e) {
    bad.push_back({file, -1, e.what()});
    return bad;
  }
  const Layout& l = ds->layout();
  std::vector<float> x(size_t(numel(ds->sample_shape())));
  std::vector<int32_t> y(size_t(numel(ds->label_shape())));
  ReadScratch scratch;
  for (int64_t i = 0; i < ds->size(); ++i) {
    try {
      ds->read(i, x.data(), y.data(), scratch);
    } catch (const std::exception& e) {
      bad.push_back({file, i, e.what()});
      continue;
    }
    int64_t nonfinite = 0;
    for (float v : x) nonfinite += !std::isfinite(v);
    if (nonfinite)
      bad.push_back({file, i, str("dataset '", l.data, "': ", nonfinite, " NaN or infinite values after the ",
                                  name(l.transform), " transform")});
    if (l.label_kind == LabelKind::mask) {
      int64_t out = 0;
      for (int32_t v : y) out += (v < 0 || v >= l.num_classes);
      if (out)
        bad.push_back({file, i, str("dataset '", l.label, "': ", out, " labels outside 0..", l.num_classes - 1)});
    } else {
      int64_t nonfinite_y = 0;
      const float* yf = reinterpret_cast<const float*>(y.data());
      for (int64_t k = 0; k < int64_t(y.size()); ++k) nonfinite_y += !std::isfinite(yf[k]);
      if (nonfinite_y) bad.push_back({file, i, str("dataset '", l.label, "': NaN or infinite targets")});
    }
  }
  return bad;
}

}  // namespace halo::data
