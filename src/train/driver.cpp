#include "halo/train/driver.hpp"

#include <unistd.h>

#include "halo/config.hpp"
#include "halo/train/stop_signal.hpp"

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "halo/cuda/runtime.hpp"
#include "halo/data/format.hpp"
#include "halo/dist/nccl.hpp"
#include "halo/train/device_support.hpp"
#include "halo/util/error.hpp"
#include "halo/util/log.hpp"

namespace halo::train {

namespace {

data::Staging staging_from(const std::string& s) {
  if (s == "none") return data::Staging::none;
  if (s == "memory") return data::Staging::memory;
  if (s == "directory") return data::Staging::directory;
  throw ConfigError("data.staging must be none, memory or directory (got '" + s + "')");
}

data::BadSamplePolicy bad_sample_policy_from(const std::string& s) {
  if (s == "error") return data::BadSamplePolicy::error;
  if (s == "skip") return data::BadSamplePolicy::skip;
  throw ConfigError("data.on_bad_sample must be error or skip (got '" + s + "')");
}

NonFinitePolicy nonfinite_policy_from(const std::string& s) {
  if (s == "stop") return NonFinitePolicy::stop;
  if (s == "skip") return NonFinitePolicy::skip;
  throw ConfigError("training.on_nonfinite must be stop or skip (got '" + s + "')");
}

Config load_config(const DriverArgs& args) {
  Config cfg = args.config_file.empty() ? Config::parse("{}") : Config::load_file(args.config_file);
  for (const auto& o : args.overrides) cfg.set(o);
  return cfg;
}

dist::CommunicatorOptions communicator_options(const Config& cfg) {
  dist::CommunicatorOptions copt;
  // 0 or less would abort the job at its first collective.
  copt.stall_timeout_s = cfg.get_double("dist.stall_timeout_s", 300, 1.0, kNoLimit);
  return copt;
}

std::string host_name() {
  char host[256] = "?";
  ::gethostname(host, sizeof host - 1);
  host[sizeof host - 1] = 0;
  return host;
}

void create_parent_directory(const std::string& file) {
  if (file.empty()) return;
  auto dir = std::filesystem::path(file).parent_path();
  if (!dir.empty()) std::filesystem::create_directories(dir);
}

}  // namespace

std::string driver_usage(const DriverSpec& spec) {
  return "usage: " + spec.program +
         " [--config FILE.yaml] [--resume] [--stop-after-steps N] [--print-config] [key=value ...]\n  " + spec.summary +
         "\n"
         "  key=value overrides any configuration key (e.g. training.epochs=8 data.batch_size=16);\n"
         "  --resume continues from checkpoint.path; docs/configuration.md lists every key.\n";
}

DriverArgs parse_driver_args(int argc, char** argv, const DriverSpec& spec) {
  DriverArgs a;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    if (s == "--help" || s == "-h") {
      a.help = true;
    } else if (s == "--config" && i + 1 < argc) {
      a.config_file = argv[++i];
    } else if (s == "--resume") {
      a.resume = true;
    } else if (s == "--print-config") {
      a.print_config = true;
    } else if (s == "--stop-after-steps" && i + 1 < argc) {
      a.overrides.push_back(std::string("training.stop_after_steps=") + argv[++i]);
    } else if (s.find('=') != std::string::npos && s.rfind("--", 0) != 0) {
      a.overrides.push_back(s);
    } else {
      throw ConfigError(spec.program + ": unknown argument '" + s + "'\n" + driver_usage(spec));
    }
  }
  return a;
}

Driver::Driver(DriverSpec spec, const DriverArgs& args)
    : spec_(std::move(spec)),
      args_(args),
      cfg_(load_config(args)),
      comm_(MPI_COMM_WORLD, communicator_options(cfg_)) {
  log::set_rank(comm_.rank(), comm_.size());
  const std::string level = cfg_.get_string("output.log_level", "info");
  HALO_CHECK_T(ConfigError, level == "debug" || level == "info" || level == "warn" || level == "error",
               "output.log_level must be debug, info, warn or error (got '", level, "')");
  log::set_level(level == "debug"  ? log::Level::debug
                 : level == "warn" ? log::Level::warn
                 : level == "error" ? log::Level::error
                                    : log::Level::info);
  seed_ = uint64_t(cfg_.get_int("training.seed", 0));
}

Device Driver::device(const std::string& model) {
  const std::string name = cfg_.get_string("training.device", "cpu");
  Device device = Device::parse(name);
  const std::string host = host_name();
  const std::string backend = cfg_.get_string("dist.backend", "auto");
  // A wrong dist.backend fails here rather than after the data is open.
  if (device.is_cpu()) {
    resolve_grad_backend(backend, device, dist::nccl_available(), str("rank ", comm_.rank(), " on ", host));
    return device;
  }
  const int gpus = cuda::device_count();
  HALO_CHECK_T(ConfigError, gpus > 0, "training.device=", name, ": rank ", comm_.rank(), " on ", host,
               HALO_ENABLE_CUDA ? " sees no CUDA GPU (check CUDA_VISIBLE_DEVICES and the launcher's GPU binding, "
                                  "e.g. srun --gpus-per-task=1)"
                                : " runs a build of Halo without CUDA (configure with -DHALO_ENABLE_CUDA=ON)",
               "; or use training.device=cpu");
  if (name == "cuda" || name == "gpu") device = Device::cuda(comm_.local_rank() % gpus);
  HALO_CHECK_T(ConfigError, device.index < gpus, "training.device=", name, ": rank ", comm_.rank(), " on ", host,
               " sees only ", gpus, " GPU(s)");
  // A build without NCCL, or dist.backend=mpi, fails here too.
  resolve_grad_backend(backend, device, dist::nccl_available(), str("rank ", comm_.rank(), " on ", host));
  log::info(model, ": rank ", comm_.rank(), " (node-local ", comm_.local_rank(), ") on ", host, " trains on ",
            device.str());
  device_ = device;
  return device;
}

std::shared_ptr<data::H5Dataset> Driver::open_dataset(const std::string& dir) {
  const std::string format = cfg_.get_string("data.format", "auto");
  HALO_CHECK_T(IOError, std::filesystem::exists(dir), "no data at '", dir, "': generate a data set with `",
               spec_.generate_command, " --out ", dir, "`, or point data.train / data.validation at yours");
  auto files = data::list_files(dir);
  HALO_CHECK_T(IOError, !files.empty(), "no HDF5 files in '", dir, "': generate a data set with `",
               spec_.generate_command, " --out ", dir, "`, or point data.train / data.validation at yours");
  return std::make_shared<data::H5Dataset>(files, data::layout_by_name(format, files.front()));
}

DriverData Driver::open_data() {
  DriverData d;
  d.train_dir = cfg_.get_string("data.train", spec_.default_train);
  d.val_dir = cfg_.get_string("data.validation", spec_.default_validation);
  d.global_batch = cfg_.get_int("data.batch_size", spec_.default_batch_size, 1, kNoLimitInt);
  HALO_CHECK_T(ConfigError, d.global_batch % comm_.size() == 0, "data.batch_size=", d.global_batch, " (from ",
               cfg_.origin("data.batch_size"), ") is the global batch: it must be a multiple of the number of ranks (",
               comm_.size(), ")");
  data::LoaderOptions& lopt = d.options;
  lopt.batch_size = d.global_batch / comm_.size();
  lopt.prefetch = int(cfg_.get_int("data.prefetch", 2, 0, 64));
  lopt.io_threads = int(cfg_.get_int("data.io_threads", 1, 1, 256));
  lopt.staging = staging_from(cfg_.get_string("data.staging", "none"));
  lopt.stage_dir = cfg_.get_string("data.stage_dir", "");
  // Pad (default) or drop: the sampler applies either the same way on every rank, so every
  // rank runs the same number of steps (docs/distributed.md).
  lopt.drop_last_batch = cfg_.get_bool("data.drop_last_batch", false);
  lopt.shard.seed = seed_;
  lopt.shard.shuffle = cfg_.get_bool("data.shuffle", true);
  // A staged shard is fixed per rank, so only its order can change between epochs.
  lopt.shard.local_shuffle = lopt.staging != data::Staging::none;
  lopt.comm = comm_.comm();
  lopt.pin_memory = device_.is_cuda();  // batches copied to a GPU by DMA
  lopt.on_bad_sample = bad_sample_policy_from(cfg_.get_string("data.on_bad_sample", "error"));

  d.train = open_dataset(d.train_dir);
  d.train_loader = std::make_unique<data::DataLoader>(d.train, lopt);
  if (!d.val_dir.empty()) {
    data::LoaderOptions vopt = lopt;
    vopt.shard.shuffle = false;
    vopt.shard.local_shuffle = false;
    vopt.staging = data::Staging::none;
    // Validation always pads: dropping would leave samples out of the metric, and the
    // padding repeats are marked (Batch::real) so the trainer counts every sample once.
    vopt.drop_last_batch = false;
    vopt.shard.drop_last = false;
    d.val_loader = std::make_unique<data::DataLoader>(open_dataset(d.val_dir), vopt);
  }
  return d;
}

TrainerOptions Driver::trainer_options(const Device& device) {
  TrainerOptions to;
  to.name = spec_.run_name;
  to.device = device;
  to.epochs = int(cfg_.get_int("training.epochs", spec_.default_epochs, 1, 1000000));
  to.stop_after_steps = cfg_.get_int("training.stop_after_steps", -1, -1, kNoLimitInt);  // -1: never
  to.validate_every = int(cfg_.get_int("training.validate_every", 1, 0, 1000000));  // 0: never
  to.clip_grad_norm = cfg_.get_double("optimizer.clip_grad_norm", 0, 0, kNoLimit);  // 0: off
  to.loss_scaling = cfg_.get_bool("training.loss_scaling", false);
  to.loss_scaler.init_scale = cfg_.get_double("training.loss_scale_init", 65536.0, 1e-30, kNoLimit);
  to.loss_scaler.max_scale = cfg_.get_double("training.loss_scale_max", 16777216.0, 1e-30, kNoLimit);
  to.loss_scaler.growth_interval = int(cfg_.get_int("training.loss_scale_growth_interval", 2000, 1, 1000000000));
  to.on_nonfinite = nonfinite_policy_from(cfg_.get_string("training.on_nonfinite", "stop"));
  to.checkpoint_path = cfg_.get_string("checkpoint.path", "");
  to.checkpoint_every_epochs = int(cfg_.get_int("checkpoint.every_epochs", 1, 0, 1000000));  // 0: never
  to.checkpoint_every_minutes = cfg_.get_double("checkpoint.every_minutes", 0, 0, kNoLimit);  // 0: off
  to.checkpoint_at_end = cfg_.get_bool("checkpoint.at_end", true);
  to.checkpoint_keep = int(cfg_.get_int("checkpoint.keep", 1, 1, 1000));
  to.metrics_file = cfg_.get_string("output.metrics", "");
  to.progress = cfg_.get_bool("output.progress", true);
  to.progress_style = cfg_.get_string("output.progress_style", "auto");
  to.progress_interval_s = cfg_.get_double("output.progress_interval_s", 10, 0, kNoLimit);
  to.grad_sync.bucket_bytes = size_t(cfg_.get_double("dist.bucket_mb", 25, 1.0 / 1024, 65536) * (1 << 20));
  to.grad_sync.compress_bf16 = cfg_.get_bool("dist.compress_bf16", false);
  to.step_guard = cfg_.get_bool("dist.step_guard", true);
  const GradBackend backend = resolve_grad_backend(cfg_.get_string("dist.backend", "auto"), device,
                                                   dist::nccl_available(),
                                                   str("rank ", comm_.rank(), " on ", host_name()));
  // One NCCL communicator on the model's GPU (collective: every rank builds its options).
  if (backend == GradBackend::nccl)
    to.grad_sync.nccl = std::make_shared<dist::NcclCommunicator>(comm_, device.index);
  if (args_.resume) {
    HALO_CHECK_T(ConfigError, !to.checkpoint_path.empty(), "--resume needs checkpoint.path");
    // The newest first; the older kept ones (checkpoint.keep) are fallbacks should it be
    // corrupt, or missing because a job was killed while keeping the previous one.
    std::vector<std::string> found = list_checkpoints(to.checkpoint_path);
    if (found.empty()) {
      log::warn("--resume: no checkpoint at '", to.checkpoint_path, "' yet; starting from the beginning");
    } else {
      if (found.front() != to.checkpoint_path && comm_.rank() == 0)
        log::warn("--resume: no checkpoint at '", to.checkpoint_path, "'; trying the older '", found.front(), "'");
      to.resume_from = found.front();
      to.resume_fallbacks.assign(found.begin() + 1, found.end());
    }
  }
  if (comm_.rank() == 0) {
    create_parent_directory(to.checkpoint_path);
    create_parent_directory(to.metrics_file);
  }
  return to;
}

bool Driver::finish_config(TrainerOptions& options) {
  const auto unused = cfg_.unused_keys();
  if (!unused.empty()) {
    std::string list;
    for (const auto& k : unused) list += " " + k;
    throw ConfigError(spec_.program + ": unknown configuration key(s):" + list +
                      " (docs/configuration.md lists the keys)");
  }
  options.checkpoint_strings["config"] = cfg_.dump();
  if (args_.print_config) {
    if (comm_.rank() == 0) std::cout << cfg_.dump() << std::endl;
    return false;
  }
  return true;
}

int run_driver(int argc, char** argv, const DriverSpec& spec, const std::function<int(Driver&)>& body) {
  dist::MpiSession mpi(&argc, &argv);
  try {
    DriverArgs args = parse_driver_args(argc, argv, spec);
    if (args.help) {
      std::cout << driver_usage(spec);
      return 0;
    }
    // SIGUSR1 / SIGTERM: finish the step, checkpoint, exit kExitResumable (stop_signal.hpp).
    install_stop_signal_handlers();
    Driver driver(spec, args);
    return body(driver);
  } catch (const std::exception& e) {
    log::error(e.what());
    // One rank's failure must end the job rather than leave the others in a collective.
    MPI_Abort(MPI_COMM_WORLD, 1);
    return 1;
  }
}

}  // namespace halo::train
