#include "halo/data/inspect.hpp"

#include "data/h5.hpp"

#include <algorithm>
#include <cmath>
#include <functional>

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

bool is_float(const std::string& dtype) { return dtype.rfind("float", 0) == 0; }
bool is_integer(const std::string& dtype) { return dtype.rfind("int", 0) == 0 || dtype.rfind("uint", 0) == 0; }

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

FileReport describe_file(const std::string& file, const Layout& layout_in) {
  FileReport r;
  r.file = file;
  r.layout = layout_in.format.empty() ? detect_layout(file) : layout_in;
  describe(file, r.layout, r);
  return r;
}

std::vector<std::string> shape_problems(const FileReport& r, const FileReport* ref) {
  std::vector<std::string> out;
  const Layout& l = r.layout;
  const std::string d = "dataset '" + l.data + "' " + to_string(r.data_dims) + " " + r.data_dtype;
  const std::string y = "dataset '" + l.label + "' " + to_string(r.label_dims) + " " + r.label_dtype;
  // one stored sample: without the sample axis of packed shards
  Shape sample = r.data_dims, label = r.label_dims;
  if (l.packed) {
    if (!sample.empty()) sample.erase(sample.begin());
    if (!label.empty()) label.erase(label.begin());
  }
  if (sample.size() != l.axes.size()) {
    out.push_back(str(d, ": ", sample.size(), " dimension(s) per sample, the layout's axes '", l.axes, "' need ",
                      l.axes.size()));
    return out;  // nothing below can be matched up
  }
  Shape spatial;
  int64_t channels = 1;
  for (size_t k = 0; k < l.axes.size(); ++k) {
    if (l.axes[k] == 'C') channels = sample[k];
    else spatial.push_back(sample[k]);
  }
  if (l.format.rfind("cosmoflow", 0) == 0) {
    if (channels != 4) out.push_back(str(d, ": ", channels, " channels, CosmoFlow has 4 (one per redshift)"));
    if (std::adjacent_find(spatial.begin(), spatial.end(), std::not_equal_to<int64_t>()) != spatial.end())
      out.push_back(str(d, ": the volume is not a cube (", to_string(spatial), ")"));
    // counts: int16 in the MLPerf files, but integer or float both read exactly
    if (l.transform == Transform::none && !is_float(r.data_dtype))
      out.push_back(str(d, ": the LBANN layout stores float32 values"));
  }
  if (l.format == "deepcam" && !is_float(r.data_dtype))
    out.push_back(str(d, ": DeepCAM fields are float32"));
  if (l.label_kind == LabelKind::vector) {
    if (l.format.rfind("cosmoflow", 0) == 0 && label != Shape{4})
      out.push_back(str(y, ": CosmoFlow targets are (4,), the 4 cosmological parameters"));
    if (!is_float(r.label_dtype)) out.push_back(str(y, ": targets are float32"));
  } else {
    if (label != spatial)
      out.push_back(str(y, ": the mask must cover the sample's grid ", to_string(spatial)));
    if (!is_integer(r.label_dtype)) out.push_back(str(y, ": mask labels are integers"));
  }
  if (ref && ref->file != r.file) {
    Shape ref_sample = ref->data_dims, ref_label = ref->label_dims;
    if (ref->layout.packed) {
      if (!ref_sample.empty()) ref_sample.erase(ref_sample.begin());
      if (!ref_label.empty()) ref_label.erase(ref_label.begin());
    }
    const std::string per = l.packed ? " per sample" : "";
    if (ref->layout.format != l.format)
      out.push_back(str("format ", l.format, ", but ", ref->file, " is ", ref->layout.format));
    else {
      if (sample != ref_sample || r.data_dtype != ref->data_dtype)
        out.push_back(str(d, ": differs from ", ref->file, " (", to_string(ref_sample), per, " ", ref->data_dtype, ")"));
      if (label != ref_label || r.label_dtype != ref->label_dtype)
        out.push_back(str(y, ": differs from ", ref->file, " (", to_string(ref_label), per, " ", ref->label_dtype, ")"));
    }
  }
  return out;
}

FileReport inspect_file(const std::string& file, const Layout& layout_in) {
  FileReport r = describe_file(file, layout_in);
  const Layout& layout = r.layout;
  H5Dataset ds({file}, layout, Driver::posix);
  ds.set_check_values(false);  // statistics of a bad file are what inspect is for
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

std::vector<BadSample> verify_file(const std::string& file, const Layout& layout_in, const FileReport* reference) {
  std::vector<BadSample> bad;
  std::unique_ptr<H5Dataset> ds;
  try {
    FileReport r = describe_file(file, layout_in);
    for (auto& p : shape_problems(r, reference)) bad.push_back({file, -1, p});
    // A file of the wrong shape is not read: its samples would not fit a batch anyway.
    if (!bad.empty()) return bad;
    ds = std::make_unique<H5Dataset>(std::vector<std::string>{file}, r.layout, Driver::posix);
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
      ds->read(i, x.data(), y.data(), scratch);  // checks the values as the loader does
    } catch (const BadSampleError& e) {
      bad.push_back({file, i, str("dataset '", e.dataset(), "': ", e.reason())});
      continue;
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
