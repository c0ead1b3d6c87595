// halo-cosmoflow: trains the MLPerf HPC CosmoFlow model data-parallel across MPI ranks.
//
//   mpiexec -n 2 halo-cosmoflow --config cosmoflow.yaml [--resume] [key=value ...]
//   srun halo-cosmoflow --config cosmoflow.yaml data.train=/scratch/cosmo/train
//
// The recipe is MLPerf's: SGD with momentum 0.9, MSE loss, peak lr = base_lr x global batch
// / base_batch_size reached by a linear warmup, then x0.25 after epoch 32 and x0.125 after
// epoch 64, L2 on the dense layers, stop at a target validation MAE. docs/configuration.md
// documents every key; docs/cosmoflow.md the model, the data and the expected results.
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "halo/cuda/runtime.hpp"
#include "halo/data/format.hpp"
#include "halo/data/loader.hpp"
#include "halo/dist/communicator.hpp"
#include "halo/models/cosmoflow.hpp"
#include "halo/nn/init.hpp"
#include "halo/nn/losses.hpp"
#include "halo/ops/metrics.hpp"
#include "halo/optim/sgd.hpp"
#include "halo/train/trainer.hpp"
#include "halo/util/config.hpp"
#include "halo/util/error.hpp"
#include "halo/util/log.hpp"

namespace {

using namespace halo;

const char* const kUsage =
    "usage: halo-cosmoflow [--config FILE.yaml] [--resume] [--stop-after-steps N] [--print-config] [key=value ...]\n"
    "  Trains the MLPerf HPC CosmoFlow model across the MPI ranks it is launched on.\n"
    "  key=value overrides any configuration key (e.g. training.epochs=8 data.batch_size=16);\n"
    "  --resume continues from checkpoint.path; docs/configuration.md lists every key.\n";

/// MAE between the predicted and true cosmological parameters (MLPerf's target metric),
/// and the MAE of always predicting 0, the centre of the parameter range: for targets
/// spread evenly over [-1, 1] (the generated data) that is what predicting the mean scores.
class CosmoFlowMetric final : public train::ValidationMetric {
 public:
  void add(const Tensor& prediction, const Tensor& target, dist::MetricReducer& sums) override {
    ops::SumCount e = ops::mae(prediction, target);
    sums.add("mae", e.sum, e.count);
    ops::SumCount zero = ops::mae(Tensor::zeros_like(target), target);
    sums.add("mae_predict_zero", zero.sum, zero.count);
  }
};

data::Staging staging_from(const std::string& s) {
  if (s == "none") return data::Staging::none;
  if (s == "memory") return data::Staging::memory;
  if (s == "directory") return data::Staging::directory;
  throw ConfigError("data.staging must be none, memory or directory (got '" + s + "')");
}

/// Glorot-uniform weights and zero biases, as the reference's Keras layers start from.
/// Kaiming's larger weights, fed log-counts with a mean near 1, push the tanh output into
/// saturation before the first step, where nothing learns.
void init_glorot(nn::Model& model, uint64_t seed) {
  for (auto* p : model.parameters()) {
    const Shape& s = p->value.shape();
    if (s.size() < 2) {
      p->value.zero_();
      continue;
    }
    const double receptive = double(numel(s)) / double(s[0] * s[1]);
    nn::init::fill(p->value, nn::init::Scheme::glorot_uniform, double(s[1]) * receptive, double(s[0]) * receptive,
                   seed, p->name);
  }
}

std::vector<int64_t> epochs_to_steps(const std::vector<double>& epochs, int64_t steps_per_epoch) {
  std::vector<int64_t> out;
  for (double e : epochs) out.push_back(optim::epochs_to_steps(e, steps_per_epoch));
  return out;
}

int run(int argc, char** argv) {
  // ---- configuration: a YAML file, then command-line overrides ----
  std::string config_file;
  std::vector<std::string> overrides;
  bool resume = false, print_config = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      return 0;
    } else if (a == "--config" && i + 1 < argc) {
      config_file = argv[++i];
    } else if (a == "--resume") {
      resume = true;
    } else if (a == "--print-config") {
      print_config = true;
    } else if (a == "--stop-after-steps" && i + 1 < argc) {
      overrides.push_back(std::string("training.stop_after_steps=") + argv[++i]);
    } else if (a.find('=') != std::string::npos && a.rfind("--", 0) != 0) {
      overrides.push_back(a);
    } else {
      throw ConfigError("halo-cosmoflow: unknown argument '" + a + "'\n" + kUsage);
    }
  }
  Config cfg = config_file.empty() ? Config::parse("{}") : Config::load_file(config_file);
  for (const auto& o : overrides) cfg.set(o);

  // ---- communicator ----
  dist::CommunicatorOptions copt;
  copt.stall_timeout_s = cfg.get_double("dist.stall_timeout_s", 300);
  dist::Communicator comm(MPI_COMM_WORLD, copt);
  log::set_rank(comm.rank(), comm.size());
  const std::string level = cfg.get_string("output.log_level", "info");
  log::set_level(level == "debug" ? log::Level::debug : level == "warn" ? log::Level::warn : log::Level::info);

  const uint64_t seed = uint64_t(cfg.get_int("training.seed", 0));
  const std::string device_name = cfg.get_string("training.device", "cpu");
  const Device device = Device::parse(device_name);
  HALO_CHECK_T(ConfigError, device.is_cpu(), "training.device=", device_name,
               ": CosmoFlow training on CUDA devices is not available yet",
               cuda::available() ? " (this build has CUDA, but not every layer of the model has a CUDA kernel)"
                                 : " (this build has no CUDA support)",
               "; use training.device=cpu");

  // ---- data ----
  const std::string train_dir = cfg.get_string("data.train", "data/cosmoflow/train");
  const std::string val_dir = cfg.get_string("data.validation", "data/cosmoflow/validation");
  const std::string format = cfg.get_string("data.format", "auto");
  const int64_t global_batch = cfg.get_int("data.batch_size", 8);
  HALO_CHECK_T(ConfigError, global_batch >= comm.size() && global_batch % comm.size() == 0, "data.batch_size=",
               global_batch, " is the global batch: it must be a multiple of the number of ranks (", comm.size(), ")");
  data::LoaderOptions lopt;
  lopt.batch_size = global_batch / comm.size();
  lopt.prefetch = int(cfg.get_int("data.prefetch", 2));
  lopt.io_threads = int(cfg.get_int("data.io_threads", 1));
  lopt.staging = staging_from(cfg.get_string("data.staging", "none"));
  lopt.stage_dir = cfg.get_string("data.stage_dir", "");
  lopt.drop_last_batch = cfg.get_bool("data.drop_last_batch", false);
  lopt.shard.seed = seed;
  lopt.shard.shuffle = cfg.get_bool("data.shuffle", true);
  lopt.shard.local_shuffle = lopt.staging != data::Staging::none;
  lopt.comm = comm.comm();
  auto open = [&](const std::string& dir) {
    auto files = data::list_files(dir);
    HALO_CHECK_T(IOError, !files.empty(), "no HDF5 files in '", dir,
                 "': generate a data set with `halo-data generate --format cosmoflow-mlperf --out ", dir,
                 " --size 32`, or point data.train / data.validation at yours");
    return std::make_shared<data::H5Dataset>(files, data::layout_by_name(format, files.front()));
  };
  auto train_ds = open(train_dir);
  data::DataLoader train_loader(train_ds, lopt);
  std::unique_ptr<data::DataLoader> val_loader;
  if (!val_dir.empty()) {
    data::LoaderOptions vopt = lopt;
    vopt.shard.shuffle = false;
    vopt.shard.local_shuffle = false;
    vopt.staging = data::Staging::none;
    vopt.drop_last_batch = false;
    val_loader = std::make_unique<data::DataLoader>(open(val_dir), vopt);
  }

  // ---- model ----
  models::CosmoFlowOptions mo;
  mo.input_size = cfg.get_int("model.input_size", train_ds->sample_shape().back());
  mo.in_channels = train_ds->sample_shape().front();
  mo.conv_layers = int(cfg.get_int("model.conv_layers", 5));
  mo.base_filters = cfg.get_int("model.base_filters", 32);
  mo.dense = cfg.get_ints("model.dense", {128, 64});
  mo.dropout = cfg.get_double("model.dropout", 0.5);
  mo.leaky_slope = cfg.get_double("model.leaky_slope", 0.3);
  // Different masks on every rank (they see different samples), reproducible per rank.
  mo.dropout_seed = seed * 1000003 + uint64_t(comm.rank()) * 1000;
  const Shape expected{mo.in_channels, mo.input_size, mo.input_size, mo.input_size};
  HALO_CHECK_T(ConfigError, train_ds->sample_shape() == expected, "the samples in '", train_dir, "' are ",
               to_string(train_ds->sample_shape()), " but model.input_size=", mo.input_size, " expects ",
               to_string(expected), ": set model.input_size to the data's edge");
  nn::Model model = models::cosmoflow(mo);
  const std::string init = cfg.get_string("model.init", "glorot");
  HALO_CHECK_T(ConfigError, init == "glorot" || init == "kaiming", "model.init must be glorot or kaiming (got '",
               init, "')");
  model.init(seed);
  if (init == "glorot") init_glorot(model, seed);
  model.to(device);

  // ---- optimizer and the MLPerf learning-rate schedule ----
  const int64_t spe = train_loader.batches_per_epoch();
  optim::SGDOptions so;
  so.momentum = cfg.get_double("optimizer.momentum", 0.9);
  so.nesterov = cfg.get_bool("optimizer.nesterov", false);
  so.weight_decay = cfg.get_double("optimizer.weight_decay", 0.0);
  const double peak_lr =
      cfg.get_double("optimizer.base_lr", 0.001) * double(global_batch) / cfg.get_double("optimizer.base_batch_size", 64);
  so.lr = peak_lr;
  optim::SGD sgd(model.parameters(), so);
  const double warmup_epochs = cfg.get_double("optimizer.warmup_epochs", 4);
  auto decay = train::piecewise(peak_lr, epochs_to_steps(cfg.get_doubles("optimizer.decay_epochs", {32, 64}), spe),
                                cfg.get_doubles("optimizer.decay_factors", {0.25, 0.125}));
  const int64_t warmup_steps = optim::epochs_to_steps(warmup_epochs, spe);
  sgd.set_schedule(warmup_steps > 0 ? optim::warmup(warmup_steps, decay, cfg.get_double("optimizer.warmup_start_lr", 0))
                                    : decay);
  nn::MSELoss loss;

  // ---- trainer ----
  train::TrainerOptions to;
  to.name = "cosmoflow";
  to.device = device;
  to.epochs = int(cfg.get_int("training.epochs", 4));
  to.stop_after_steps = cfg.get_int("training.stop_after_steps", -1);
  to.validate_every = int(cfg.get_int("training.validate_every", 1));
  to.clip_grad_norm = cfg.get_double("optimizer.clip_grad_norm", 0);
  const double target = cfg.get_double("training.target_mae", 0.124);
  if (target > 0) {
    to.target_metric = "mae";
    to.target_value = target;
  }
  to.checkpoint_path = cfg.get_string("checkpoint.path", "");
  to.checkpoint_every_epochs = int(cfg.get_int("checkpoint.every_epochs", 1));
  to.checkpoint_every_minutes = cfg.get_double("checkpoint.every_minutes", 0);
  to.checkpoint_at_end = cfg.get_bool("checkpoint.at_end", true);
  to.metrics_file = cfg.get_string("output.metrics", "");
  to.progress = cfg.get_bool("output.progress", true);
  to.progress_style = cfg.get_string("output.progress_style", "auto");
  to.progress_interval_s = cfg.get_double("output.progress_interval_s", 10);
  to.grad_sync.bucket_bytes = size_t(cfg.get_double("dist.bucket_mb", 25) * (1 << 20));
  to.grad_sync.compress_bf16 = cfg.get_bool("dist.compress_bf16", false);
  if (resume) {
    HALO_CHECK_T(ConfigError, !to.checkpoint_path.empty(), "--resume needs checkpoint.path");
    if (std::filesystem::exists(to.checkpoint_path))
      to.resume_from = to.checkpoint_path;
    else
      log::warn("--resume: no checkpoint at '", to.checkpoint_path, "' yet; starting from the beginning");
  }
  if (!to.checkpoint_path.empty() && comm.rank() == 0) {
    auto dir = std::filesystem::path(to.checkpoint_path).parent_path();
    if (!dir.empty()) std::filesystem::create_directories(dir);
  }
  if (!to.metrics_file.empty() && comm.rank() == 0) {
    auto dir = std::filesystem::path(to.metrics_file).parent_path();
    if (!dir.empty()) std::filesystem::create_directories(dir);
  }

  const auto unused = cfg.unused_keys();
  if (!unused.empty()) {
    std::string list;
    for (const auto& k : unused) list += " " + k;
    throw ConfigError("unknown configuration key(s):" + list + " (docs/configuration.md lists the keys)");
  }
  to.checkpoint_strings["config"] = cfg.dump();
  if (print_config) {
    if (comm.rank() == 0) std::cout << cfg.dump() << std::endl;
    return 0;
  }

  log::info("halo-cosmoflow: ", comm.size(), " ranks, ", train_ds->size(), " training samples of ",
            to_string(train_ds->sample_shape()), ", ",
            val_loader ? std::to_string(val_loader->dataset().size()) : std::string("no"),
            " validation samples, global batch ", global_batch, " (", lopt.batch_size, " per rank), ", spe,
            " steps per epoch, peak lr ", peak_lr, ", ", model.parameter_count(), " parameters, ",
            model.forward_flops_per_sample() / 1e9, " GFLOP forward per sample");

  train::Trainer trainer(comm, model, sgd, loss, train_loader, val_loader.get(),
                         std::make_unique<CosmoFlowMetric>(), to);
  train::FitResult r = trainer.fit();
  if (!r.interrupted && !r.last_val_metrics.empty() && comm.rank() == 0) {
    std::printf("final validation MAE: %.4f (predicting the mean of uniform targets: %.4f)\n",
                r.last_val_metrics["mae"], r.last_val_metrics["mae_predict_zero"]);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  halo::dist::MpiSession mpi(&argc, &argv);
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    halo::log::error(e.what());
    // One rank's failure must end the job rather than leave the others in a collective.
    MPI_Abort(MPI_COMM_WORLD, 1);
    return 1;
  }
}
