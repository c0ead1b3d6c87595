// Checkpoints in HDF5. Tensors are stored as datasets at their names used as paths
// ("model/conv1/weight" opens in h5py as f["model/conv1/weight"]); scalars live under
// "meta/". Files are written to a temporary name beside the target and renamed into place,
// so a job killed mid-write never leaves a truncated checkpoint behind.
#pragma once
#include <cstdint>
#include <map>
#include <string>

#include "halo/tensor/tensor.hpp"

namespace halo::train {

struct CheckpointData {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, int64_t> integers;
  std::map<std::string, double> reals;
  std::map<std::string, std::string> strings;
};

/// Writes atomically (temporary file, then rename). Throws IOError naming the file.
void save_checkpoint(const std::string& path, const CheckpointData& data);
/// Reads every dataset back (tensors on the CPU, in their stored dtype).
CheckpointData load_checkpoint(const std::string& path);

}  // namespace halo::train
