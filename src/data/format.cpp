#include "halo/data/format.hpp"

#include <algorithm>
#include <sstream>
#include <filesystem>

#include "data/h5.hpp"
#include "halo/util/error.hpp"

namespace halo::data {

Layout cosmoflow_mlperf() {
  Layout l;
  l.format = "cosmoflow-mlperf";
  l.data = "x";
  l.label = "y";
  l.axes = "DHWC";
  l.transform = Transform::log1p;
  return l;
}

Layout cosmoflow_lbann() {
  Layout l;
  l.format = "cosmoflow-lbann";
  l.data = "full";
  l.label = "unitPar";
  l.axes = "CDHW";
  l.transform = Transform::none;
  return l;
}

Layout cosmoflow_raw(int64_t edge) {
  Layout l;
  l.format = "cosmoflow-raw";
  l.data = "full";
  l.label = "unitPar";
  l.axes = "DHWC";
  l.transform = Transform::log1p;
  l.subvolume = edge;
  return l;
}

Layout deepcam(const std::string& stats_file) {
  Layout l;
  l.format = "deepcam";
  l.data = "climate/data";
  l.label = "climate/labels_0";
  l.axes = "HWC";
  l.transform = Transform::minmax;
  l.label_kind = LabelKind::mask;
  l.stats_file = stats_file;
  return l;
}

const char* name(Transform t) {
  switch (t) {
    case Transform::none: return "none";
    case Transform::log1p: return "log1p";
    case Transform::minmax: return "minmax";
  }
  return "?";
}

Transform transform_from_name(const std::string& s) {
  if (s == "none") return Transform::none;
  if (s == "log1p") return Transform::log1p;
  if (s == "minmax") return Transform::minmax;
  throw ConfigError(str("unknown transform '", s, "' (none, log1p or minmax)"));
}

const char* name(LabelKind k) { return k == LabelKind::mask ? "mask" : "vector"; }

LabelKind label_kind_from_name(const std::string& s) {
  if (s == "vector") return LabelKind::vector;
  if (s == "mask") return LabelKind::mask;
  throw ConfigError(str("unknown label kind '", s, "' (vector or mask)"));
}

Layout detect_layout(const std::string& file, int64_t subvolume) {
  H5Id f = open_file(file, Driver::posix);
  std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  std::string packed = read_string_attr(f.get(), "halo_format");
  if (packed == "packed") {
    Layout l;
    l.format = "packed";
    l.packed = true;
    l.data = "data";
    l.label = "label";
    l.axes = read_string_attr(f.get(), "axes", "CDHW");
    l.transform = transform_from_name(read_string_attr(f.get(), "transform", "none"));
    l.label_kind = label_kind_from_name(read_string_attr(f.get(), "label_kind", "vector"));
    if (l.transform == Transform::minmax) {
      l.stats_file = file;  // packed shards carry their normalisation
      l.stats_min = "norm/minval";
      l.stats_max = "norm/maxval";
    }
    return l;
  }
  if (has_object(f.get(), "x") && has_object(f.get(), "y")) return cosmoflow_mlperf();
  if (has_object(f.get(), "climate/data") && has_object(f.get(), "climate/labels_0")) return deepcam();
  if (has_object(f.get(), "full") && has_object(f.get(), "unitPar")) {
    H5Id d = open_dataset(f.get(), "full", file);
    auto dims = dataset_dims(d.get());
    HALO_CHECK_T(IOError, dims.size() == 4, "file ", file, ": dataset 'full' has ", dims.size(),
                 " dimensions; CosmoFlow expects 4 (C,D,H,W or D,H,W,C)");
    // LBANN puts the 4 channels first; raw universes put them last. A (4,4,4,4) volume is
    // ambiguous and read as LBANN.
    if (dims[0] == 4) return cosmoflow_lbann();
    int64_t edge = subvolume > 0 ? subvolume : std::min<int64_t>(128, int64_t(dims[0]));
    return cosmoflow_raw(edge);
  }
  throw IOError(str("file ", file,
                    ": no known layout (expected x/y, full/unitPar, climate/data/labels_0 or a Halo packed "
                    "shard; for other files describe the datasets with a custom layout)"));
}

Layout layout_by_name(const std::string& n, const std::string& probe_file, int64_t subvolume,
                      const std::string& stats_file) {
  Layout l;
  if (n == "auto" || n.empty()) {
    l = detect_layout(probe_file, subvolume);
  } else if (n == "cosmoflow-mlperf") {
    l = cosmoflow_mlperf();
  } else if (n == "cosmoflow-lbann") {
    l = cosmoflow_lbann();
  } else if (n == "cosmoflow-raw") {
    l = cosmoflow_raw(subvolume > 0 ? subvolume : 128);
  } else if (n == "deepcam") {
    l = deepcam();
  } else if (n == "packed") {
    l = detect_layout(probe_file, subvolume);
    HALO_CHECK_T(ConfigError, l.packed, "file ", probe_file, " is not a Halo packed shard");
  } else {
    throw ConfigError(str("unknown format '", n,
                          "' (auto, cosmoflow-mlperf, cosmoflow-lbann, cosmoflow-raw, deepcam, packed)"));
  }
  if (!stats_file.empty() && l.transform == Transform::minmax && !l.packed) l.stats_file = stats_file;
  return l;
}

std::string encode_layout(const Layout& l) {
  // One field per line; strings carry their length first, so any character survives.
  std::ostringstream o;
  auto put = [&](const std::string& v) { o << v.size() << ':' << v << '\n'; };
  put(l.format), put(l.data), put(l.label), put(l.axes);
  o << int(l.packed) << '\n' << name(l.transform) << '\n' << name(l.label_kind) << '\n' << l.subvolume << '\n';
  put(l.stats_file), put(l.stats_min), put(l.stats_max);
  o << l.num_classes << '\n';
  return o.str();
}

Layout decode_layout(const std::string& s) {
  std::istringstream in(s);
  auto get = [&]() {
    size_t n = 0;
    char colon = 0;
    in >> n >> colon;
    HALO_CHECK_T(IOError, in && colon == ':' && n <= s.size(), "decode_layout: malformed layout");
    std::string v(n, '\0');
    in.read(&v[0], std::streamsize(n));
    in.ignore(1);
    return v;
  };
  Layout l;
  l.format = get(), l.data = get(), l.label = get(), l.axes = get();
  int packed = 0;
  std::string transform, kind;
  in >> packed >> transform >> kind >> l.subvolume;
  l.packed = packed != 0;
  l.transform = transform_from_name(transform);
  l.label_kind = label_kind_from_name(kind);
  in.ignore(1);
  l.stats_file = get(), l.stats_min = get(), l.stats_max = get();
  in >> l.num_classes;
  HALO_CHECK_T(IOError, bool(in), "decode_layout: malformed layout");
  return l;
}

std::vector<std::string> list_files(const std::string& dir_or_file) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir_or_file, ec)) return {dir_or_file};
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir_or_file, ec)) {
    if (!e.is_regular_file()) continue;
    std::string ext = e.path().extension().string();
    if ((ext == ".h5" || ext == ".hdf5") && e.path().filename() != "stats.h5") out.push_back(e.path().string());
  }
  HALO_CHECK_T(IOError, !ec, "directory ", dir_or_file, ": cannot list (", ec.message(), ")");
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace halo::data
