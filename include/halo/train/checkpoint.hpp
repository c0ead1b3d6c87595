// Checkpoints in HDF5. Tensors are stored as datasets at their names used as paths
// ("model/conv1/weight" opens in h5py as f["model/conv1/weight"]); scalars live under
// "meta/".
//
// Trust: every dataset carries a 64-bit checksum of its data (XXH64 of the little-endian
// bytes, attribute "halo_xxh64"), checked on load, because HDF5 itself does not notice a
// flipped byte in contiguous data. Files written before checksums existed have no
// attribute and load unchecked.
//
// Atomicity: a file is written to "<path>.tmp.<pid>", fsync'ed, renamed into place and its
// directory fsync'ed, so a job killed mid-write (or a crash of the node) never leaves a
// truncated checkpoint behind. The temporary file is removed when the write fails; those
// left by killed processes are removed at the next write (see remove_stale_checkpoint_temps).
//
// Keeping several: with keep = K > 1, `path` is always the newest checkpoint and the K-1
// before it are kept beside it as kept_checkpoint_name(path, step) ("run/ckpt.h5" at global
// step 120 -> "run/ckpt.120.h5"), named by their meta/global_step.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "halo/tensor/tensor.hpp"

namespace halo::nn {
class Model;
}
namespace halo::optim {
class Optimizer;
class DynamicLossScaler;
}  // namespace halo::optim

namespace halo::train {

struct CheckpointData {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, int64_t> integers;
  std::map<std::string, double> reals;
  std::map<std::string, std::string> strings;
};

/// Writes atomically (temporary file, fsync, rename, fsync of the directory). `keep` >= 1
/// checkpoints are kept (see above); keep > 1 needs integers["global_step"]. Throws IOError
/// naming the file, the dataset when there is one, and the OS's reason.
void save_checkpoint(const std::string& path, const CheckpointData& data, int keep = 1);
/// Reads every dataset back (tensors on the CPU, in their stored dtype) and verifies each
/// one's checksum when it has one. Throws IOError naming the file and the dataset.
CheckpointData load_checkpoint(const std::string& path);

/// The whole of a checkpoint as one byte string (every tensor's dtype, shape and bytes, and
/// the scalars) and back: a checkpoint is read from the file system once, on rank 0, and the
/// other ranks receive it (the Trainer's resume). decode throws IOError on malformed input.
std::string encode_checkpoint(const CheckpointData& data);
CheckpointData decode_checkpoint(const std::string& bytes);

/// Where an older kept checkpoint of `path` lives: "dir/name.ext" -> "dir/name.<step>.ext".
std::string kept_checkpoint_name(const std::string& path, int64_t step);
/// The checkpoints of `path`, newest first: `path` itself (if it exists), then the kept
/// older ones by falling step. Empty when there is none.
std::vector<std::string> list_checkpoints(const std::string& path);
/// Loads the first of `candidates` that opens and verifies, warning (log::warn) for each one
/// skipped with the reason; `*chosen` receives its index. Throws IOError with every file's
/// reason when none loads.
CheckpointData load_newest_valid_checkpoint(const std::vector<std::string>& candidates, size_t* chosen);

/// Removes the temporary files "<path>.tmp.<pid>" that no write is using any more: those of
/// a process that is no longer running on this host, of this process, or untouched for ten
/// minutes (left by a process on another node). Returns how many were removed.
int remove_stale_checkpoint_temps(const std::string& path);

/// XXH64 (seed 0) of `bytes` bytes: the checkpoint checksum.
uint64_t checksum64(const void* data, size_t bytes);

// Training state as a checkpoint, without a Trainer: a simulation that calls Trainer::step
// (or its own loop) saves and restores what a resumed run needs with these. Keys:
// "model/<parameter>", "buffers/<buffer>", "optimizer/<state>", "loss_scaler/...",
// meta "dropout_step/<layer>" (each Dropout layer's mask counter, so masks continue as
// they would have), "epoch", "step_in_epoch", "global_step", "ranks", "optimizer_type".

/// Where training stands; stored with the state and given back on load.
struct TrainingPosition {
  int epoch = 0;              ///< epochs completed
  int64_t step_in_epoch = 0;  ///< steps done in the unfinished epoch
  int64_t global_step = 0;    ///< optimizer steps (batches) in total
  int ranks = 1;              ///< ranks that trained (a resume on another count is warned about)
  /// Samples per step over all ranks (0: unknown, e.g. steps without a loader). A resume at
  /// another global batch is refused: the epoch position and step-based schedules would not
  /// carry over.
  int64_t global_batch = 0;
  /// Ranks holding different samples (ranks / spatial grid size; restored as `ranks` from
  /// checkpoints written before it was recorded).
  int replicas = 0;
};

/// The state of (model, optimizer, loss scaler if any, Dropout layers, position).
CheckpointData training_state(nn::Model& model, const optim::Optimizer& optimizer,
                              const optim::DynamicLossScaler* scaler, const TrainingPosition& position);
/// Restores what training_state() captured into the same model, optimizer and scaler: shapes
/// are checked, an optimizer of another type or a missing scaler state is refused. `source`
/// names the checkpoint in errors. Returns the stored position.
TrainingPosition restore_training_state(const CheckpointData& data, nn::Model& model, optim::Optimizer& optimizer,
                                        optim::DynamicLossScaler* scaler, const std::string& source = "checkpoint");

/// training_state() written atomically to `path` (save_checkpoint); call it on one rank (the
/// state is the same on every rank after a synchronised step).
void save_training_checkpoint(const std::string& path, nn::Model& model, const optim::Optimizer& optimizer,
                              const optim::DynamicLossScaler* scaler, const TrainingPosition& position,
                              int keep = 1);
/// load_checkpoint() then restore_training_state(); call it on every rank.
TrainingPosition load_training_checkpoint(const std::string& path, nn::Model& model, optim::Optimizer& optimizer,
                                          optim::DynamicLossScaler* scaler = nullptr);

}  // namespace halo::train
