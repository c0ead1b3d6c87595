// What every training driver (halo-cosmoflow, halo-deepcam, your own) does around its model:
// the command line, the configuration, the communicator and logging, the data loaders from
// the `data.*` keys, the trainer options from `training.*`, `checkpoint.*`, `output.*` and
// `dist.*`, resume, and the final check for unknown keys. A driver then reads
//
//   int main(int argc, char** argv) {
//     return train::run_driver(argc, argv, spec, [](train::Driver& d) {
//       train::DriverData data = d.open_data();
//       nn::Model model = ...;                      // from d.config()'s model.* keys
//       ...optimizer, loss, metric...
//       train::TrainerOptions to = d.trainer_options();
//       if (!d.finish_config(to)) return 0;        // --print-config
//       train::Trainer(d.comm(), model, opt, loss, *data.train_loader, data.val_loader.get(),
//                      std::make_unique<MyMetric>(), to).fit();
//       return 0;
//     });
//   }
//
// docs/configuration.md documents the shared keys once for every driver.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "halo/data/dataset.hpp"
#include "halo/data/loader.hpp"
#include "halo/dist/communicator.hpp"
#include "halo/dist/spatial_grid.hpp"
#include "halo/tensor/device.hpp"
#include "halo/train/mllog.hpp"
#include "halo/train/trainer.hpp"
#include "halo/util/config.hpp"

namespace halo::train {

/// What distinguishes one driver's command line and defaults.
struct DriverSpec {
  std::string program = "halo-train";  ///< names the driver in usage, errors and log lines
  std::string summary;                 ///< one line under the usage line
  std::string run_name = "train";      ///< TrainerOptions::name
  std::string default_train = "data/train";
  std::string default_validation = "data/validation";
  /// The halo-data command (without --out) that makes a data set this driver reads, named
  /// in the error when a data directory holds no files.
  std::string generate_command = "halo-data generate";
  int64_t default_batch_size = 8;  ///< global
  int default_epochs = 4;
  /// MLPerf HPC's name of the benchmark (submission_benchmark: cosmoflow, deepcam); empty:
  /// output.mllog logs no submission_benchmark.
  std::string mlperf_benchmark;
  /// Whether the driver's model can split each sample over ranks (dist.spatial); when false
  /// the key is unknown to it, and the unknown-key check rejects it.
  bool spatial = false;
};

/// The command line as parsed (before any configuration is read).
struct DriverArgs {
  std::string config_file;
  std::vector<std::string> overrides;  ///< "key=value", in order
  bool resume = false;
  bool print_config = false;
  bool help = false;
};

/// Parses --config FILE, --resume, --stop-after-steps N, --print-config, --help and
/// key=value overrides; throws ConfigError (with the usage) on anything else.
DriverArgs parse_driver_args(int argc, char** argv, const DriverSpec& spec);
std::string driver_usage(const DriverSpec& spec);

/// The training and validation data of a run.
struct DriverData {
  std::shared_ptr<data::H5Dataset> train;
  std::unique_ptr<data::DataLoader> train_loader;
  std::shared_ptr<data::H5Dataset> validation;   ///< null when data.validation is empty
  std::unique_ptr<data::DataLoader> val_loader;  ///< null when data.validation is empty
  std::string train_dir, val_dir;
  data::LoaderOptions options;  ///< the training loader's (per-rank batch size)
  int64_t global_batch = 0;
};

class Driver {
 public:
  /// Loads the configuration and the overrides, creates the communicator (dist.stall_timeout_s;
  /// with dist.instances = M > 1, this rank's instance: the world's ranks split into M groups
  /// of consecutive ranks) and sets the log level (output.log_level) and rank prefix. Opens
  /// output.mllog (on the instance's rank 0) and logs init_start and the submission fields.
  /// Collective.
  Driver(DriverSpec spec, const DriverArgs& args);

  Config& config() { return cfg_; }
  /// The communicator of this rank's training instance (all of MPI_COMM_WORLD's ranks when
  /// dist.instances is 1).
  const dist::Communicator& comm() const { return comm_; }
  const dist::Communicator& world() const { return world_; }
  int instance() const { return instance_; }    ///< 0 .. instances() - 1
  /// dist.spatial = [pd, ph, pw] (DriverSpec::spatial): every sample split over a grid of
  /// that many ranks of comm(), the others holding other samples; null when unsplit.
  const std::shared_ptr<dist::SpatialGrid>& spatial() const { return spatial_; }
  /// The ranks holding different samples: comm() itself, or the spatial grid's data().
  /// Batches, sharding and the gradient average go over these.
  const dist::Communicator& data_comm() const { return spatial_ ? spatial_->data() : comm_; }
  /// This rank's replica: its rank in data_comm() (which samples it reads).
  int replica() const { return data_comm().rank(); }
  int instances() const { return instances_; }  ///< dist.instances
  /// The MLPerf log of this instance (output.mllog; disabled on the ranks other than the
  /// instance's rank 0, or when the key is empty). Drivers log their hyperparameters into it
  /// between the Driver's construction and start_run().
  MLLogger& mllog() { return *mllog_; }
  const DriverSpec& spec() const { return spec_; }
  uint64_t seed() const { return seed_; }  ///< training.seed
  bool resume() const { return args_.resume; }
  /// training.precision: f32 (default) or bf16 (bf16 activations, f32 master weights; the
  /// loaders then deliver bf16 batches). ConfigError for anything else.
  DType precision();

  /// training.device: `cpu`, `cuda` (the GPU of index node-local rank % visible GPUs, so
  /// one rank per GPU works whether or not the launcher restricts each rank's view) or
  /// `cuda:N`. Throws ConfigError naming the rank and host when the build has no CUDA or
  /// the rank sees no GPU, and (on any device) when `dist.backend` cannot work there
  /// (resolve_grad_backend). `model` names the network in the log line.
  /// Call it before open_data(), which then allocates batches in pinned memory for a GPU.
  Device device(const std::string& model);

  /// The data.* keys: loaders over data.train and data.validation (sharded over the ranks,
  /// validation unshuffled and unstaged). data.batch_size is global and must be a multiple
  /// of the number of ranks (of replicas under dist.spatial, where each rank reads only its
  /// block of every sample of its replica).
  DriverData open_data();
  /// An H5Dataset over the HDF5 files of `dir` (data.format); IOError naming the directory
  /// and the halo-data command that generates one when it holds none.
  std::shared_ptr<data::H5Dataset> open_dataset(const std::string& dir);

  /// TrainerOptions from training.*, checkpoint.*, output.*, dist.* and
  /// optimizer.clip_grad_norm, with --resume applied and the checkpoint and metrics
  /// directories created (rank 0). For a GPU `device` it creates the NCCL communicator of the
  /// gradient synchroniser (collective: every rank calls it). Task-specific fields (the target metric) stay unset.
  TrainerOptions trainer_options(const Device& device = Device::cpu());

  /// Rejects unknown keys (ConfigError listing them), stores the configuration text in the
  /// checkpoints, and handles --print-config: returns false when the driver should exit now.
  /// Call it after every key was read.
  bool finish_config(TrainerOptions& options);

  /// The end of initialisation and the start of the timed run as MLPerf HPC defines them:
  /// logs the data set sizes, global_batch_size, gradient_accumulation_frequency, seed,
  /// number_of_nodes, accelerators_per_node, cache_clear (with output.mllog, node-local rank 0
  /// first drops the data files from the page cache) and init_stop; stages the training shard
  /// (data.staging) between staging_start and staging_stop, outside the timed region (allowed
  /// since HPC v3.0); then a barrier and run_start. `options` are the trainer's (from
  /// trainer_options(), which also set their mllog). Collective.
  void start_run(DriverData& data, const TrainerOptions& options);
  /// Logs run_stop (status success when the target was reached, else aborted), prints the
  /// time to train (run_start to run_stop) beside the wall time and, with dist.instances > 1,
  /// the throughput line on world rank 0 (collective over the world). Returns the exit code
  /// (kExitResumable after a stop signal).
  int finish_run(const FitResult& result);

 private:
  DriverSpec spec_;
  DriverArgs args_;
  Config cfg_;
  int64_t init_start_ms_ = 0;  // before the communicator: MPI_Comm_dup is part of the start-up
  dist::Communicator world_;
  int instances_ = 1;
  int instance_ = 0;
  dist::Communicator comm_;
  std::shared_ptr<dist::SpatialGrid> spatial_;
  std::unique_ptr<MLLogger> mllog_;
  int64_t run_start_ms_ = 0;
  double staging_s_ = 0;
  Device device_ = Device::cpu();  // from device(); open_data() pins batches for a GPU
  uint64_t seed_ = 0;
};

/// The whole main(): an MPI session, the command line, a Driver, then `body`; --help prints
/// the usage. An exception is logged and ends the whole job with MPI_Abort, so one rank's
/// failure never leaves the others waiting in a collective.
int run_driver(int argc, char** argv, const DriverSpec& spec, const std::function<int(Driver&)>& body);

}  // namespace halo::train
