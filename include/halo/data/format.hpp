// HDF5 sample layouts: which datasets hold a sample and its label, their axis order, the
// transform applied on reading, and how a file maps to samples. Presets cover the MLPerf
// HPC CosmoFlow and DeepCAM files, the LBANN CosmoFlow layout, raw CosmoFlow universes
// (served as sub-volumes) and Halo's packed shards; any other science's files are a
// `Layout` filled in by hand (or from a config), no code needed. docs/data-formats.md
// names every dataset, shape, dtype and axis order.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace halo::data {

/// How data files are opened: POSIX (sec2) or HDF5's MPI-IO driver on MPI_COMM_SELF with
/// independent transfers (each rank reads only its own samples). `automatic` picks MPI-IO
/// when MPI is initialised with MPI_THREAD_MULTIPLE (the background readers call it from
/// their threads), else POSIX.
enum class Driver { automatic, posix, mpio };
const char* name(Driver d);

/// The stored element type of a data set, mapped to a native memory type Halo converts from.
enum class RawType { i8, u8, i16, u16, i32, u32, i64, f32, f64 };
size_t raw_size(RawType t);
const char* name(RawType t);

/// What the loader does to stored values before delivering them as float32.
enum class Transform {
  none,    ///< x
  log1p,   ///< log(x + 1): CosmoFlow counts
  minmax,  ///< (x - min[c]) / (max[c] - min[c]) with per-channel min/max from a stats file
};

/// Labels come either as a small float vector per sample (regression targets) or as an
/// integer class map over the spatial grid (segmentation).
enum class LabelKind { vector, mask };

struct Layout {
  std::string format = "custom";  ///< "cosmoflow-mlperf", "cosmoflow-lbann", "cosmoflow-raw", "deepcam", "packed", "custom"
  std::string data = "x";         ///< dataset path of the sample
  std::string label = "y";        ///< dataset path of the label
  /// Axes of one stored sample (without the sample axis of packed files): one letter per
  /// dimension, 'C' for channels and D, H, W (or any other letter) for spatial axes. The
  /// loader delivers (C, spatial axes in stored order); without a 'C' the sample has C = 1.
  std::string axes = "DHWC";
  bool packed = false;            ///< the first dimension of `data` and `label` indexes samples
  Transform transform = Transform::none;
  LabelKind label_kind = LabelKind::vector;
  /// > 0: every file is one large volume cut into cubes of this edge by hyperslab reads
  /// (the spatial extents must be multiples of it); all cubes share the file's label.
  int64_t subvolume = 0;
  /// minmax: HDF5 file holding per-channel minima and maxima (empty: "stats.h5" beside the
  /// first data file), and the dataset paths inside it.
  std::string stats_file;
  std::string stats_min = "climate/minval";
  std::string stats_max = "climate/maxval";
  int num_classes = 3;  ///< masks: valid labels are 0 .. num_classes-1 (checked by verify)
};

/// MLPerf HPC CosmoFlow: `x` (128,128,128,4) int16 (D,H,W,C), `y` (4,) float32; log1p.
Layout cosmoflow_mlperf();
/// LBANN CosmoFlow: `full` (4,D,H,W) float32 (C,D,H,W), `unitPar` (4,); no transform.
Layout cosmoflow_lbann();
/// Raw CosmoFlow universes: `full` (512,512,512,4) int16 (D,H,W,C), `unitPar` (4,), cut into
/// cubes of `edge`; log1p.
Layout cosmoflow_raw(int64_t edge = 128);
/// MLPerf HPC DeepCAM: `climate/data` (768,1152,16) float32 (H,W,C), `climate/labels_0`
/// (768,1152) integer classes; per-channel min/max normalisation from `stats_file`.
Layout deepcam(const std::string& stats_file = "");

/// Names for the enums (as written in packed-shard attributes and printed by halo-data).
const char* name(Transform t);
Transform transform_from_name(const std::string& s);
const char* name(LabelKind k);
LabelKind label_kind_from_name(const std::string& s);

/// Looks inside `file` and returns the matching preset (packed shards describe themselves
/// through attributes). `subvolume` is the cube edge for raw universes (0: 128, or the
/// whole volume when smaller). Throws IOError naming the file when nothing matches.
Layout detect_layout(const std::string& file, int64_t subvolume = 0);

/// A layout as one string and back (every field), so rank 0 can probe it and broadcast it.
std::string encode_layout(const Layout& l);
Layout decode_layout(const std::string& s);

/// Layout by preset name ("cosmoflow-mlperf", ...) or "auto" (detect from `probe_file`).
Layout layout_by_name(const std::string& name, const std::string& probe_file, int64_t subvolume = 0,
                      const std::string& stats_file = "");

/// The HDF5 files of a directory (sorted, so every rank sees the same order), ending in
/// .h5 or .hdf5, without DeepCAM's stats.h5. A path that is a file is returned as is.
std::vector<std::string> list_files(const std::string& dir_or_file);

}  // namespace halo::data
