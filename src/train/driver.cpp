#include "halo/train/driver.hpp"

#include <fcntl.h>
#include <unistd.h>

#include "halo/train/stop_signal.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "halo/cuda/runtime.hpp"
#include "halo/data/format.hpp"
#include "halo/dist/nccl.hpp"
#include "halo/dist/root_read.hpp"
#include "halo/ops/registry.hpp"
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

// Rank 0 reads the configuration file and broadcasts its text; every rank parses it (so a
// YAML error reads the same everywhere). N ranks open the file once, not N times.
Config load_config(const DriverArgs& args) {
  Config cfg = Config::parse("{}");
  if (!args.config_file.empty()) {
    const std::string text =
        dist::read_on_root(MPI_COMM_WORLD, [&] { return Config::read_file_text(args.config_file); });
    cfg = Config::parse_file(args.config_file, text);
  }
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

// dist.instances: how many independent trainings share the job (MLPerf HPC's throughput
// mode); the world's ranks must divide evenly so every instance has the same size.
int instance_count(Config& cfg, const dist::Communicator& world) {
  const int64_t m = cfg.get_int("dist.instances", 1, 1, 1 << 20);
  HALO_CHECK_T(ConfigError, world.size() % m == 0, "dist.instances (from ", cfg.origin("dist.instances"), ") is ", m,
               ": it must divide the ", world.size(), " ranks of the job into equal instances");
  return int(m);
}

// Drops the data files from this node's page cache (POSIX_FADV_DONTNEED: clean pages only,
// no root needed), so a timed run does not start from data a previous run left in memory.
// MLPerf's cache_clear. The files are the data sets' (rank 0's listing), so the directories
// are not listed again on every node. Unreadable files are left to the loaders to report.
void drop_page_cache(const std::vector<const data::H5Dataset*>& sets) {
  for (const data::H5Dataset* ds : sets) {
    if (ds == nullptr) continue;
    for (const auto& f : ds->files()) {
      const int fd = ::open(f.c_str(), O_RDONLY);
      if (fd < 0) continue;
      ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
      ::close(fd);
    }
  }
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
      init_start_ms_(MLLogger::now_ms()),
      world_(MPI_COMM_WORLD, communicator_options(cfg_)),
      instances_(instance_count(cfg_, world_)),
      instance_(world_.rank() / (world_.size() / instances_)),
      comm_(instances_ > 1 ? world_.split(instance_, world_.rank()) : world_) {
  // Ranks within the instance: each instance's rank 0 reports its own training.
  log::set_rank(comm_.rank(), comm_.size());
  const std::string level = cfg_.get_string("output.log_level", "info");
  HALO_CHECK_T(ConfigError, level == "debug" || level == "info" || level == "warn" || level == "error",
               "output.log_level must be debug, info, warn or error (got '", level, "')");
  log::set_level(level == "debug"  ? log::Level::debug
                 : level == "warn" ? log::Level::warn
                 : level == "error" ? log::Level::error
                                    : log::Level::info);
  if (spec_.spatial) {
    const std::vector<int64_t> parts = cfg_.get_ints("dist.spatial", {1, 1, 1});
    HALO_CHECK_T(ConfigError, parts.size() == 3 && parts[0] >= 1 && parts[1] >= 1 && parts[2] >= 1 &&
                                  comm_.size() % (parts[0] * parts[1] * parts[2]) == 0,
                 "dist.spatial (from ", cfg_.origin("dist.spatial"), ") must be three positive rank counts [D, H, W] "
                 "whose product divides the ", comm_.size(), " ranks", instances_ > 1 ? " of the instance" : "");
    if (parts[0] * parts[1] * parts[2] > 1)
      spatial_ = std::make_shared<dist::SpatialGrid>(comm_, std::array<int, 3>{int(parts[0]), int(parts[1]), int(parts[2])});
  }
  // Each instance trains its own model: its own seed (instance 0 keeps the configured one).
  seed_ = uint64_t(cfg_.get_int("training.seed", 0)) + uint64_t(instance_);

  // MLPerf logging. The mlperf.* keys are read (and checked) whether or not a log is written,
  // so the unknown-key check accepts a configuration that keeps them.
  std::string mllog_path = cfg_.get_string("output.mllog", "");
  if (instances_ > 1) mllog_path = instance_path(mllog_path, instance_);
  const std::string org = cfg_.get_string("mlperf.org", "Halo");
  const std::string division = cfg_.get_string("mlperf.division", "closed");
  const std::string status = cfg_.get_string("mlperf.status", "onprem");
  // A collective: every rank takes part whether or not the platform is given.
  const int64_t nodes = comm_.node_count();
  const std::string platform = cfg_.get_string("mlperf.platform", str(nodes, "x", host_name()));
  HALO_CHECK_T(ConfigError, !org.empty() && !platform.empty(), "mlperf.org and mlperf.platform must not be empty");
  HALO_CHECK_T(ConfigError, division == "closed" || division == "open", "mlperf.division (from ",
               cfg_.origin("mlperf.division"), ") must be closed or open (got '", division, "')");
  HALO_CHECK_T(ConfigError, status == "onprem" || status == "cloud" || status == "preview" || status == "research",
               "mlperf.status (from ", cfg_.origin("mlperf.status"),
               ") must be onprem, cloud, preview or research (got '", status, "')");
  // A resumed run appends to its log (MLPerf counts only uninterrupted runs; the appended
  // log shows what happened).
  mllog_ = std::make_unique<MLLogger>(mllog_path, comm_.rank() == 0, args_.resume);
  MLLogger& ml = *mllog_;
  ml.start("init_start");
  if (!spec_.mlperf_benchmark.empty()) ml.event("submission_benchmark", spec_.mlperf_benchmark);
  ml.event("submission_org", org);
  ml.event("submission_division", division);
  ml.event("submission_status", status);
  ml.event("submission_platform", platform);
  if (instances_ > 1) ml.event("instance", int64_t(instance_), MLMeta{{"instances", int64_t(instances_)}});
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
               ops::has_backend(DeviceKind::cuda) ? " sees no CUDA GPU (check CUDA_VISIBLE_DEVICES and the launcher's GPU binding, "
                                  "e.g. srun --gpus-per-task=1)"
                                : " runs a build of Halo without CUDA (reconfigure with the CUDA backend on, docs/install.md)",
               "; or use training.device=cpu");
  // The node's ranks of every instance (dist.instances) together share the node's GPUs: the
  // index comes from the rank on the node, not within the instance.
  if (name == "cuda" || name == "gpu") device = Device::cuda(world_.local_rank() % gpus);
  HALO_CHECK_T(ConfigError, device.index < gpus, "training.device=", name, ": rank ", comm_.rank(), " on ", host,
               " sees only ", gpus, " GPU(s)");
  // A build without NCCL, or dist.backend=mpi, fails here too.
  resolve_grad_backend(backend, device, dist::nccl_available(), str("rank ", comm_.rank(), " on ", host));
  // The process's CUDA device from now on: contexts, pinned host buffers and the device
  // guards' "previous" device are this GPU's, not GPU 0's on every rank.
  cuda::set_device(device.index);
  log::info(model, ": rank ", comm_.rank(), " (node-local ", world_.local_rank(), ") on ", host, " trains on ",
            device.str());
  device_ = device;
  return device;
}

// Rank 0 lists the directory, probes the layout (data.format=auto opens the first file) and
// builds the dataset from the files (shapes, packed shards' samples, minmax statistics); the
// others get all of it by broadcast (dist::open_dataset_on_root) and touch no directory and no
// file before their loaders read. A failure on rank 0 (no data, no HDF5 files, an unknown
// layout, a bad shard) is thrown on every rank.
std::shared_ptr<data::H5Dataset> Driver::open_dataset(const std::string& dir) {
  const std::string format = cfg_.get_string("data.format", "auto");
  return dist::open_dataset_on_root(comm_.comm(), [&] {
    HALO_CHECK_T(IOError, std::filesystem::exists(dir), "no data at '", dir, "': generate a data set with `",
                 spec_.generate_command, " --out ", dir, "`, or point data.train / data.validation at yours");
    auto files = data::list_files(dir);
    HALO_CHECK_T(IOError, !files.empty(), "no HDF5 files in '", dir, "': generate a data set with `",
                 spec_.generate_command, " --out ", dir, "`, or point data.train / data.validation at yours");
    data::Layout layout = data::layout_by_name(format, files.front());
    return std::make_pair(std::move(files), std::move(layout));
  });
}

namespace {

// This rank's block of samples of `sample_shape` (C, D, H, W) under the grid.
data::SpatialBlock spatial_block(const dist::SpatialGrid& grid, const Shape& sample_shape, const std::string& dir) {
  HALO_CHECK_T(ConfigError, sample_shape.size() == 4, "dist.spatial: the samples in '", dir, "' are ",
               to_string(sample_shape), ", not (C, D, H, W) volumes");
  data::SpatialBlock b;
  for (size_t a = 0; a < 3; ++a) {
    const nn::IndexRange r = grid.block_range(int(a), sample_shape[a + 1]);
    HALO_CHECK_T(ConfigError, r.size() > 0, "dist.spatial: axis ", a, " of the samples in '", dir, "' (extent ",
                 sample_shape[a + 1], ") cannot be split over ", grid.parts()[a], " ranks");
    b.begin[a] = r.begin;
    b.end[a] = r.end;
  }
  return b;
}

}  // namespace

DType Driver::precision() {
  const std::string precision = cfg_.get_string("training.precision", "f32");
  HALO_CHECK_T(ConfigError, precision == "f32" || precision == "bf16",
               "training.precision must be f32 or bf16 (got '", precision, "')");
  return precision == "bf16" ? DType::bf16 : DType::f32;
}

DriverData Driver::open_data() {
  DriverData d;
  d.train_dir = cfg_.get_string("data.train", spec_.default_train);
  d.val_dir = cfg_.get_string("data.validation", spec_.default_validation);
  d.global_batch = cfg_.get_int("data.batch_size", spec_.default_batch_size, 1, kNoLimitInt);
  const dist::Communicator& dc = data_comm();
  HALO_CHECK_T(ConfigError, d.global_batch % dc.size() == 0, "data.batch_size=", d.global_batch, " (from ",
               cfg_.origin("data.batch_size"), ") is the global batch: it must be a multiple of the number of ",
               spatial_ ? str("replicas (", comm_.size(), " ranks / ", spatial_->spatial().size(),
                              " per sample under dist.spatial = ", dc.size(), ")")
                        : str("ranks (", dc.size(), ")"));
  data::LoaderOptions& lopt = d.options;
  lopt.batch_size = d.global_batch / dc.size();
  lopt.prefetch = int(cfg_.get_int("data.prefetch", 2, 1, 64));
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
  lopt.comm = dc;  // the ranks of one spatial group read the same samples
  lopt.pin_memory = device_.is_cuda();  // batches copied to a GPU by DMA
  lopt.dtype = precision();  // bf16 batches: rounded on the I/O threads, half the bytes to copy
  lopt.on_bad_sample = bad_sample_policy_from(cfg_.get_string("data.on_bad_sample", "error"));

  d.train = open_dataset(d.train_dir);
  if (spatial_) lopt.block = spatial_block(*spatial_, d.train->sample_shape(), d.train_dir);
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
    d.validation = open_dataset(d.val_dir);
    HALO_CHECK_T(ConfigError, !spatial_ || d.validation->sample_shape() == d.train->sample_shape(), "dist.spatial: the "
                 "validation samples in '", d.val_dir, "' are ", to_string(d.validation->sample_shape()),
                 ", the training samples in '", d.train_dir, "' ", to_string(d.train->sample_shape()),
                 ": a split model needs one volume size");
    d.val_loader = std::make_unique<data::DataLoader>(d.validation, vopt);
  }
  return d;
}

TrainerOptions Driver::trainer_options(const Device& device) {
  TrainerOptions to;
  to.name = spec_.run_name;
  to.device = device;
  to.precision = precision();
  to.epochs = int(cfg_.get_int("training.epochs", spec_.default_epochs, 1, 1000000));
  to.stop_after_steps = cfg_.get_int("training.stop_after_steps", -1, -1, kNoLimitInt);  // -1: never
  to.validate_every = int(cfg_.get_int("training.validate_every", 1, 0, 1000000));  // 0: never
  to.clip_grad_norm = cfg_.get_double("optimizer.clip_grad_norm", 0, 0, kNoLimit);  // 0: off
  to.loss_scaling = cfg_.get_bool("training.loss_scaling", false);
  to.cuda_graph = cfg_.get_bool("training.cuda_graph", false);
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
  to.trace_file = cfg_.get_string("output.trace", "");
  // The Trainer copies its options: the logger (which exists from the constructor on) goes in
  // now; it logs nothing before fit(), which starts after run_start.
  to.mllog = mllog_.get();
  if (instances_ > 1) {
    // Every instance writes its own files: the same path would be overwritten by all.
    to.checkpoint_path = instance_path(to.checkpoint_path, instance_);
    to.metrics_file = instance_path(to.metrics_file, instance_);
    to.trace_file = instance_path(to.trace_file, instance_);
    to.name += str(" instance ", instance_);
  }
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
    to.grad_sync.nccl = std::make_shared<dist::NcclCommunicator>(data_comm(), device.index);
  if (spatial_) to.data_comm = spatial_->data();
  if (args_.resume) {
    HALO_CHECK_T(ConfigError, !to.checkpoint_path.empty(), "--resume needs checkpoint.path");
    // The newest first; the older kept ones (checkpoint.keep) are fallbacks should it be
    // corrupt, or missing because a job was killed while keeping the previous one.
    // Rank 0 lists and every rank takes its list: ranks that saw the directory differently
    // (a stale NFS cache on one node) would otherwise enter different collectives.
    const std::vector<std::string> found = dist::unpack_strings(dist::read_on_root(
        comm_.comm(), [&] { return dist::pack_strings(list_checkpoints(to.checkpoint_path)); }));
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
    create_parent_directory(to.trace_file);
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

void Driver::start_run(DriverData& data, const TrainerOptions& options) {
  MLLogger& ml = *mllog_;
  ml.event("train_samples", int64_t(data.train->size()));
  ml.event("eval_samples", data.val_loader ? int64_t(data.val_loader->dataset().size()) : int64_t(0));
  ml.event("global_batch_size", data.global_batch);
  ml.event("gradient_accumulation_frequency", int64_t(options.grad_sync.accumulation_steps));
  ml.event("seed", int64_t(seed_));
  // Collective on every rank.
  const int64_t nodes = comm_.node_count();
  ml.event("number_of_nodes", nodes);
  // One GPU per rank (Driver::device()), so the ranks per node; on the CPU no accelerator.
  ml.event("accelerators_per_node", device_.is_cuda() ? (int64_t(comm_.size()) + nodes - 1) / nodes : int64_t(0));
  if (ml.enabled() || !cfg_.get_string("output.mllog", "").empty()) {
    if (comm_.local_rank() == 0)
      drop_page_cache({data.train.get(), data.validation.get()});
    comm_.barrier("cache clear");
  }
  ml.event("cache_clear", true);
  ml.end("init_stop");
  if (data.options.staging != data::Staging::none) {
    // Staging is outside the timed region since MLPerf HPC v3.0; the barrier makes
    // staging_stop the moment the slowest rank is done.
    ml.start("staging_start");
    const int64_t t0 = MLLogger::now_ms();
    data.train_loader->stage();
    comm_.barrier("staging");
    staging_s_ = double(MLLogger::now_ms() - t0) / 1000.0;
    ml.end("staging_stop", MLMeta{{"staging_duration", staging_s_}});
  }
  // Every rank starts the clock together.
  comm_.barrier("run start");
  run_start_ms_ = MLLogger::now_ms();
  ml.start("run_start");
}

int Driver::finish_run(const FitResult& r) {
  // The end of the timed region: every rank has finished fit() (its last collective).
  const int64_t stop_ms = MLLogger::now_ms();
  mllog_->end("run_stop", MLMeta{{"status", std::string(r.target_reached ? "success" : "aborted")}});
  const double ttt = double(stop_ms - run_start_ms_) / 1000.0;
  const double wall = double(stop_ms - init_start_ms_) / 1000.0;
  if (comm_.rank() == 0) {
    std::printf("%stime to train: %.3f s (run_start to run_stop, MLPerf HPC's timed region; initialisation %.3f s "
                "and staging %.3f s excluded); wall time %.3f s; target %s\n",
                instances_ > 1 ? str("instance ", instance_, ": ").c_str() : "", ttt,
                double(run_start_ms_ - init_start_ms_) / 1000.0 - staging_s_, staging_s_, wall,
                r.target_reached ? "reached" : "not reached");
    std::fflush(stdout);
  }
  if (instances_ > 1) {
    // MLPerf HPC's weak-scaling metric: models trained per minute, over the time from the
    // first instance's run_start to the last one's run_stop. Each instance's rank 0 fills
    // its slot; the sum over the world gathers them.
    const size_t m = size_t(instances_);
    std::vector<double> v(4 * m, 0.0);
    if (comm_.rank() == 0) {
      v[size_t(instance_)] = double(run_start_ms_);
      v[m + size_t(instance_)] = double(stop_ms);
      v[2 * m + size_t(instance_)] = r.interrupted ? 0.0 : 1.0;
      v[3 * m + size_t(instance_)] = r.target_reached ? 1.0 : 0.0;
    }
    // Instances finish minutes apart (own seeds, early targets): the first ones wait here for
    // the last, which is no stall.
    world_.set_stall_timeout(1e9);
    world_.allreduce_sum(v.data(), v.size(), "throughput report");
    if (world_.rank() == 0) {
      double first = v[0], last = v[m];
      int finished = 0, converged = 0;
      std::vector<double> ttts;
      for (size_t k = 0; k < m; ++k) {
        first = std::min(first, v[k]);
        last = std::max(last, v[m + k]);
        finished += int(v[2 * m + k]);
        converged += int(v[3 * m + k]);
        ttts.push_back((v[m + k] - v[k]) / 1000.0);
      }
      std::sort(ttts.begin(), ttts.end());
      const double median = m % 2 ? ttts[m / 2] : 0.5 * (ttts[m / 2 - 1] + ttts[m / 2]);
      const double span_min = (last - first) / 60000.0;
      std::printf("throughput: instances=%d models_per_min=%.4f (%d finished, %d reached the target, "
                  "first run_start to last run_stop %.3f s) time_to_train_s min/median/max=%.3f/%.3f/%.3f\n",
                  instances_, span_min > 0 ? double(finished) / span_min : 0.0, finished, converged,
                  (last - first) / 1000.0, ttts.front(), median, ttts.back());
      std::fflush(stdout);
    }
  }
  return r.stop_signal != 0 ? kExitResumable : 0;
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
