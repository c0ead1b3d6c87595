#include "halo/train/trainer.hpp"

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>

#include "halo/dist/model_sync.hpp"
#include "halo/dist/step_guard.hpp"
#include "halo/nn/dropout.hpp"
#include "halo/optim/clip.hpp"
#include "halo/train/device_batches.hpp"
#include "halo/train/stop_signal.hpp"
#include "halo/train/device_support.hpp"
#include "halo/train/metrics_log.hpp"
#include "halo/train/progress.hpp"
#include "halo/util/error.hpp"
#include "halo/util/log.hpp"
#include "halo/util/timer.hpp"

namespace halo::train {

std::map<std::string, double> ValidationMetric::finish(
    const std::map<std::string, dist::MetricReducer::Total>& totals) {
  std::map<std::string, double> out;
  for (const auto& [k, t] : totals) out[k] = t.count > 0 ? t.sum / t.count : 0.0;
  return out;
}

optim::Schedule piecewise(double lr, std::vector<int64_t> boundaries, std::vector<double> factors) {
  HALO_CHECK_T(ConfigError, boundaries.size() == factors.size(), "piecewise schedule: ", boundaries.size(),
               " boundaries but ", factors.size(), " factors (give one factor per boundary)");
  HALO_CHECK_T(ConfigError, std::is_sorted(boundaries.begin(), boundaries.end()),
               "piecewise schedule: boundaries must be increasing");
  return [=](int64_t step) {
    double f = 1.0;
    for (size_t i = 0; i < boundaries.size(); ++i)
      if (step >= boundaries[i]) f = factors[i];
    return lr * f;
  };
}

namespace {

// Checkpoint keys. Parameters keep their model names under model/, so a checkpoint opens in
// h5py as f["model/conv1/weight"].
const char* const kModel = "model/";
const char* const kBuffers = "buffers/";
const char* const kOptimizer = "optimizer/";
const char* const kDropout = "dropout_step/";
// Each rank's loss sum and sample count of an unfinished epoch, [ranks, 2] f64.
const char* const kEpochLossPerRank = "progress/epoch_loss_per_rank";

std::vector<std::pair<std::string, nn::Dropout*>> dropout_layers(nn::Model& m) {
  std::vector<std::pair<std::string, nn::Dropout*>> out;
  for (const auto& n : m.nodes())
    if (auto* d = dynamic_cast<nn::Dropout*>(n.layer.get())) out.emplace_back(n.name, d);
  return out;
}

// "sample 12 (file a.h5), sample 40 (file b.h5, row 3), ...": the batch's samples, so a
// non-finite step can be traced to its data (halo-data verify FILE checks a file).
std::string describe_batch(const data::H5Dataset& ds, const std::vector<int64_t>& samples) {
  constexpr size_t kMax = 16;  // enough to find the culprit; a 1024-sample batch stays one line
  std::string out;
  for (size_t k = 0; k < samples.size() && k < kMax; ++k) {
    const data::SampleRef& r = ds.ref(samples[k]);
    out += str(k ? ", " : "", "sample ", samples[k], " (file ", ds.files().at(size_t(r.file)));
    if (ds.layout().packed) out += str(", row ", r.index);
    if (ds.layout().subvolume > 0) out += str(", cube at ", r.origin[0], ",", r.origin[1], ",", r.origin[2]);
    out += ")";
  }
  if (samples.size() > kMax) out += str(" and ", samples.size() - kMax, " more");
  return out;
}

// The first checkpoint entry holding a NaN or infinite value, with their count; empty when
// every tensor and real is finite.
std::string first_nonfinite(const CheckpointData& d) {
  for (const auto& [name, t] : d.tensors) {
    if (!t.defined() || !is_floating(t.dtype())) continue;
    Tensor c = t.to(Device::cpu()).contiguous();
    int64_t bad = 0;
    const int64_t n = c.numel();
    switch (c.dtype()) {
      case DType::f32: { const float* p = c.data<float>(); for (int64_t i = 0; i < n; ++i) bad += !std::isfinite(p[i]); break; }
      case DType::f64: { const double* p = c.data<double>(); for (int64_t i = 0; i < n; ++i) bad += !std::isfinite(p[i]); break; }
      case DType::bf16: { const bf16* p = c.data<bf16>(); for (int64_t i = 0; i < n; ++i) bad += !std::isfinite(float(p[i])); break; }
      case DType::f16: { const f16* p = c.data<f16>(); for (int64_t i = 0; i < n; ++i) bad += !std::isfinite(float(p[i])); break; }
      default: break;
    }
    if (bad) return str("'", name, "' holds ", bad, " NaN or infinite value(s) of ", n);
  }
  for (const auto& [name, v] : d.reals)
    if (!std::isfinite(v)) return str("'meta/", name, "' is ", v);
  return {};
}

}  // namespace

struct Trainer::Impl {
  dist::Communicator comm;
  nn::Model& model;
  optim::Optimizer& opt;
  nn::Loss& loss;
  data::DataLoader& train;
  data::DataLoader* val;
  std::unique_ptr<ValidationMetric> metric;
  TrainerOptions o;
  std::unique_ptr<dist::GradientSynchronizer> sync;
  std::unique_ptr<dist::StepGuard> guard;  // when o.step_guard
  std::unique_ptr<optim::DynamicLossScaler> scaler;  // when o.loss_scaling

  int epochs_done = 0;
  int64_t step_in_epoch = 0;
  int64_t global_step = 0;
  // Global loss sum and sample count of the epoch's steps taken before a resume.
  double resumed_loss_sum = 0, resumed_loss_count = 0;
  bool resumed_loss_per_rank = false;  // this rank's own partial sums (else rank 0 holds the totals)
  // This epoch's steps skipped for non-finite values and bad samples replaced (global, so
  // every rank holds the same numbers; kept in checkpoints for a mid-epoch resume).
  int64_t epoch_skipped_steps = 0, epoch_skipped_samples = 0;
  bool resumed = false;
  double last_val_seconds = 0;

  Impl(dist::Communicator c, nn::Model& m, optim::Optimizer& op, nn::Loss& l, data::DataLoader& t,
       data::DataLoader* v, std::unique_ptr<ValidationMetric> mt, TrainerOptions opts)
      : comm(std::move(c)), model(m), opt(op), loss(l), train(t), val(v), metric(std::move(mt)), o(std::move(opts)) {}

  bool rank0() const { return comm.rank() == 0; }

  // Buffers that each rank updates from its own shard (BatchNorm running statistics without a
  // synchronising reducer) drift apart across ranks. Before validating and before writing a
  // checkpoint every rank takes rank 0's, so all ranks validate with the statistics the
  // checkpoint holds, and a resumed run (which loads rank 0's everywhere) validates exactly
  // as an uninterrupted one. Collective; the buffers are small.
  void sync_buffers() {
    if (comm.size() < 2) return;
    std::vector<Tensor*> bufs;
    for (auto* b : model.buffers()) bufs.push_back(&b->value);
    if (!bufs.empty()) dist::broadcast_tensors(comm, bufs, 0);
  }

  Tensor prepare_input(const Tensor& x) const {
    Tensor t = x;
    if (o.input_format == MemoryFormat::channels_last && t.dim() >= 4 && !t.is_channels_last())
      t = t.to_memory_format(MemoryFormat::channels_last);
    if (t.device() != o.device) t = t.to(o.device);
    return t;
  }
  Tensor prepare_target(const Tensor& y) const { return y.device() == o.device ? y : y.to(o.device); }

  // Collective: every rank calls it; rank 0 writes. `epoch_loss_*` are this rank's partial
  // sums of an unfinished epoch. Each rank's pair is kept (gathered by a sum over slots that
  // are zero elsewhere, which is exact), so a resume on as many ranks continues every rank's
  // running sum exactly and reports the epoch's loss to the bit; the totals serve a resume
  // on another rank count.
  void save(const Trainer& self, double epoch_loss_sum, double epoch_loss_count) {
    if (o.checkpoint_path.empty()) return;
    std::vector<double> per_rank(size_t(2 * comm.size()), 0.0);
    per_rank[size_t(2 * comm.rank())] = epoch_loss_sum;
    per_rank[size_t(2 * comm.rank() + 1)] = epoch_loss_count;
    comm.allreduce_sum(per_rank.data(), per_rank.size(), "checkpoint epoch loss");
    sync_buffers();
    Stopwatch sw;
    CheckpointData d;
    int64_t bad = 0;
    std::string what;
    if (rank0()) {
      d = self.checkpoint_state();
      double total[2] = {0, 0};
      for (int r = 0; r < comm.size(); ++r) {
        total[0] += per_rank[size_t(2 * r)];
        total[1] += per_rank[size_t(2 * r + 1)];
      }
      d.reals["epoch_loss_sum"] = total[0];
      d.reals["epoch_loss_count"] = total[1];
      d.tensors[kEpochLossPerRank] = Tensor::from_vector<double>(per_rank, {int64_t(comm.size()), 2});
      d.integers["epoch_skipped_steps"] = step_in_epoch > 0 ? epoch_skipped_steps : 0;
      d.integers["epoch_skipped_samples"] = step_in_epoch > 0 ? epoch_skipped_samples : 0;
      // A checkpoint is what a run falls back on: it must never hold NaN or inf, or the
      // last good one would be replaced by a useless one. Checked before the file is opened.
      what = first_nonfinite(d);
      bad = what.empty() ? 0 : 1;
    }
    comm.allreduce_sum(&bad, 1, "checkpoint finite check");  // every rank stops, not only rank 0
    if (bad)
      throw NonFiniteError(str(o.name, ": refusing to write checkpoint '", o.checkpoint_path, "' ",
                               step_in_epoch > 0 ? str("at epoch ", epochs_done + 1, " step ", step_in_epoch)
                                                 : str("after epoch ", epochs_done),
                               " (global step ", global_step, "): ",
                               rank0() ? what : "the model state holds non-finite values",
                               "; the previous checkpoint is left as it was"));
    if (rank0()) save_checkpoint(o.checkpoint_path, d, o.checkpoint_keep);
    // Nobody moves on (or exits) before the file is in place.
    comm.barrier("checkpoint written");
    log::debug(o.name, ": checkpoint '", o.checkpoint_path, "' written in ", sw.seconds(), " s");
  }
};

Trainer::Trainer(dist::Communicator comm, nn::Model& model, optim::Optimizer& optimizer, nn::Loss& loss,
                 data::DataLoader& train, data::DataLoader* val, std::unique_ptr<ValidationMetric> metric,
                 TrainerOptions options)
    : impl_(std::make_unique<Impl>(std::move(comm), model, optimizer, loss, train, val, std::move(metric),
                                   std::move(options))) {
  auto& I = *impl_;
  HALO_CHECK_T(ConfigError, model.compiled(), I.o.name, ": compile the model before building the trainer");
  // A layer without a CUDA kernel must stop the run here, not in the middle of a step.
  check_model_runs_on(model, I.o.device, I.o.name);
  for (auto* p : model.parameters())
    HALO_CHECK_T(ConfigError, p->value.device() == I.o.device, I.o.name, ": parameter '", p->name, "' is on ",
                 p->value.device().str(), " but the trainer's device is ", I.o.device.str(),
                 ": call model.to(device) before building the trainer");
  HALO_CHECK_T(ConfigError, I.o.epochs >= 1, I.o.name, ": epochs must be at least 1 (got ", I.o.epochs, ")");
  HALO_CHECK_T(ConfigError, I.o.checkpoint_keep >= 1, I.o.name, ": checkpoint_keep must be at least 1 (got ",
               I.o.checkpoint_keep, ")");
  // The loaders' batch counts are the same on every rank (the sampler decides them from the
  // global sample count), so these refusals happen on every rank alike.
  HALO_CHECK_T(ConfigError, train.batches_per_epoch() > 0, I.o.name, ": rank ", I.comm.rank(),
               " has no training batch (", train.dataset().size(), " samples over ", I.comm.size(), " ranks",
               train.sampler().options().drop_last ? " with drop_last_batch, which keeps only full batches" : "",
               "): use more samples or fewer ranks");
  if (val) {
    HALO_CHECK_T(ConfigError, I.metric != nullptr, I.o.name, ": a validation loader needs a ValidationMetric");
    HALO_CHECK_T(ConfigError, val->batches_per_epoch() > 0, I.o.name, ": rank ", I.comm.rank(),
                 " has no validation batch (", val->dataset().size(), " samples over ", I.comm.size(),
                 " ranks): use more validation samples or fewer ranks");
  }
  if (I.o.loss_scaling) I.scaler = std::make_unique<optim::DynamicLossScaler>(model.parameters(), I.o.loss_scaler);
  if (!I.o.resume_from.empty()) {
    dist::check_same_model(I.comm, model);
    load_state(load_resume_checkpoint());
    I.resumed = true;
    log::info(I.o.name, ": resumed from '", I.o.resume_from, "' at epoch ", I.epochs_done + 1, " step ",
              I.step_in_epoch, " (", I.global_step, " steps done)");
  } else {
    dist::broadcast_model(I.comm, model);
  }
  I.sync = std::make_unique<dist::GradientSynchronizer>(I.comm, model.parameters(), I.o.grad_sync);
  I.sync->attach(model);
  if (I.o.step_guard) I.guard = std::make_unique<dist::StepGuard>(I.comm, I.o.name);
}

Trainer::~Trainer() = default;

int Trainer::epochs_done() const { return impl_->epochs_done; }
int64_t Trainer::step_in_epoch() const { return impl_->step_in_epoch; }
int64_t Trainer::global_step() const { return impl_->global_step; }

CheckpointData Trainer::load_resume_checkpoint() {
  auto& I = *impl_;
  if (I.o.resume_fallbacks.empty()) return load_checkpoint(I.o.resume_from);
  // Rank 0 picks the newest checkpoint that loads and passes its checksums; every rank then
  // loads that same one, so no two ranks resume from different states. A failure on rank 0
  // is shared (index -1) so the other ranks fail too instead of waiting for it.
  std::vector<std::string> candidates{I.o.resume_from};
  candidates.insert(candidates.end(), I.o.resume_fallbacks.begin(), I.o.resume_fallbacks.end());
  CheckpointData d;
  std::string error;
  int64_t chosen = 0;
  if (I.rank0()) {
    try {
      size_t i = 0;
      d = load_newest_valid_checkpoint(candidates, &i);
      chosen = int64_t(i);
      // The newer ones that failed are set aside, not left in the rotation: the next write
      // would otherwise keep a corrupt file as the "older checkpoint" in place of this one.
      for (size_t j = 0; j < i; ++j) {
        const std::string aside = candidates[j] + ".corrupt";
        if (std::rename(candidates[j].c_str(), aside.c_str()) == 0)
          log::warn(I.o.name, ": moved the unusable checkpoint '", candidates[j], "' to '", aside, "'");
      }
    } catch (const Error& e) {
      error = e.what();
      chosen = -1;
    }
  }
  I.comm.allreduce_sum(&chosen, 1, "checkpoint choice");
  if (chosen < 0)
    throw IOError(I.rank0() ? error : str("rank 0 found no usable checkpoint of '", I.o.resume_from, "'"));
  I.o.resume_from = candidates[size_t(chosen)];
  if (chosen > 0 && I.rank0())
    log::warn(I.o.name, ": resuming from the older checkpoint '", I.o.resume_from, "' (see the warnings above)");
  if (!I.rank0()) d = load_checkpoint(I.o.resume_from);
  return d;
}

CheckpointData Trainer::checkpoint_state() const {
  auto& I = *impl_;
  CheckpointData d;
  for (auto* p : I.model.parameters()) d.tensors[kModel + p->name] = p->value;
  for (auto* b : I.model.buffers()) d.tensors[kBuffers + b->name] = b->value;
  for (auto& [k, t] : I.opt.state()) d.tensors[kOptimizer + k] = t;
  for (auto& [name, layer] : dropout_layers(I.model)) d.integers[kDropout + name] = int64_t(layer->step());
  d.integers["epoch"] = I.epochs_done;
  d.integers["step_in_epoch"] = I.step_in_epoch;
  d.integers["global_step"] = I.global_step;
  d.integers["ranks"] = I.comm.size();
  if (I.scaler)
    for (auto& [k, t] : I.scaler->state()) d.tensors[k] = t;  // "loss_scaler/..."
  d.strings["optimizer_type"] = I.opt.type();
  for (auto& [k, v] : I.o.checkpoint_strings) d.strings[k] = v;
  return d;
}

void Trainer::load_state(const CheckpointData& d) {
  auto& I = *impl_;
  const std::string& path = I.o.resume_from.empty() ? std::string("checkpoint") : I.o.resume_from;
  auto tensor = [&](const std::string& key) -> const Tensor& {
    auto it = d.tensors.find(key);
    HALO_CHECK_T(IOError, it != d.tensors.end(), "checkpoint '", path, "' has no dataset '", key,
                 "': it was written for a different model (compare the model options)");
    return it->second;
  };
  auto integer = [&](const std::string& key) {
    auto it = d.integers.find(key);
    HALO_CHECK_T(IOError, it != d.integers.end(), "checkpoint '", path, "' has no 'meta/", key, "'");
    return it->second;
  };
  for (auto* p : I.model.parameters()) {
    const Tensor& t = tensor(kModel + p->name);
    HALO_CHECK_T(ShapeError, t.shape() == p->value.shape(), "checkpoint '", path, "': '", p->name, "' has shape ",
                 to_string(t.shape()), " but the model's is ", to_string(p->value.shape()));
    p->value.copy_(t);
  }
  for (auto* b : I.model.buffers()) {
    const Tensor& t = tensor(kBuffers + b->name);
    HALO_CHECK_T(ShapeError, t.shape() == b->value.shape(), "checkpoint '", path, "': buffer '", b->name,
                 "' has shape ", to_string(t.shape()), " but the model's is ", to_string(b->value.shape()));
    b->value.copy_(t);
  }
  optim::StateDict state;
  const std::string prefix = kOptimizer;
  for (const auto& [k, t] : d.tensors)
    if (k.rfind(prefix, 0) == 0) state[k.substr(prefix.size())] = t;
  auto type = d.strings.find("optimizer_type");
  if (type != d.strings.end() && type->second != I.opt.type())
    throw ConfigError("checkpoint '" + path + "' holds " + type->second + " state but the optimizer is " +
                      I.opt.type());
  I.opt.load_state(state);
  if (I.scaler) {
    optim::StateDict scaler_state;
    for (const auto& [k, t] : d.tensors)
      if (k.rfind("loss_scaler/", 0) == 0) scaler_state[k] = t;
    HALO_CHECK_T(IOError, !scaler_state.empty(), "checkpoint '", path,
                 "' holds no loss scaler state: it was written without loss scaling");
    I.scaler->load_state(scaler_state);
  }
  for (auto& [name, layer] : dropout_layers(I.model)) layer->set_step(uint64_t(integer(kDropout + name)));
  I.epochs_done = int(integer("epoch"));
  I.step_in_epoch = integer("step_in_epoch");
  I.global_step = integer("global_step");
  const int64_t ranks = integer("ranks");
  if (ranks != I.comm.size() && I.rank0())  // once, not once per rank
    log::warn(I.o.name, ": checkpoint '", path, "' was written by ", ranks, " ranks, resuming on ", I.comm.size(),
              ": training continues, but not bit for bit as an uninterrupted run would");
  auto real = [&](const char* k) {
    auto it = d.reals.find(k);
    return it == d.reals.end() ? 0.0 : it->second;
  };
  I.resumed_loss_sum = real("epoch_loss_sum");
  I.resumed_loss_count = real("epoch_loss_count");
  I.resumed_loss_per_rank = false;
  auto per_rank = d.tensors.find(kEpochLossPerRank);
  if (per_rank != d.tensors.end() && per_rank->second.numel() == 2 * I.comm.size()) {
    const std::vector<double> v = per_rank->second.to(DType::f64).to_vector<double>();
    I.resumed_loss_sum = v[size_t(2 * I.comm.rank())];
    I.resumed_loss_count = v[size_t(2 * I.comm.rank() + 1)];
    I.resumed_loss_per_rank = true;
  }
  auto count = [&](const char* k) {  // absent in checkpoints of older versions
    auto it = d.integers.find(k);
    return it == d.integers.end() ? int64_t(0) : it->second;
  };
  I.epoch_skipped_steps = count("epoch_skipped_steps");
  I.epoch_skipped_samples = count("epoch_skipped_samples");
}

std::map<std::string, double> Trainer::validate(int64_t epoch, double* val_loss, int64_t* val_samples) {
  auto& I = *impl_;
  HALO_CHECK_T(ConfigError, I.val != nullptr, I.o.name, ": validate() without a validation loader");
  I.sync_buffers();
  I.model.eval();
  dist::MetricReducer sums;
  double counted = 0;
  I.val->start_epoch(epoch);
  while (const data::Batch* b = I.val->next()) {
    // Rows from b->real on repeat samples that are counted elsewhere (the padding that gives
    // every rank the same number of batches): they stay out of the loss and the metric, so
    // each real sample counts exactly once whatever the number of ranks.
    if (b->real == 0) {
      // Padding only. The metric's names must still be declared (every rank reduces the
      // same names), with nothing counted.
      Tensor pred = I.model.forward(I.prepare_input(b->x));
      dist::MetricReducer discarded;
      I.metric->add(pred, I.prepare_target(b->y), discarded);
      for (const auto& kv : discarded.local()) sums.add(kv.first, 0, 0);
      sums.add("loss", 0, 0);
      continue;
    }
    const bool whole = b->real == b->size;
    Tensor pred = I.model.forward(I.prepare_input(whole ? b->x : b->x.slice(0, b->real)));
    Tensor y = I.prepare_target(whole ? b->y : b->y.slice(0, b->real));
    const double l = I.loss.forward(pred, y);
    sums.add("loss", l * double(b->real), double(b->real));
    I.metric->add(pred, y, sums);
    counted += double(b->real);
  }
  I.model.train();
  sums.add("__samples", counted, 1);  // a name no metric uses
  auto totals = sums.reduce_totals(I.comm);
  const auto& lt = totals.at("loss");
  if (val_loss) *val_loss = lt.count > 0 ? lt.sum / lt.count : 0.0;
  if (val_samples) *val_samples = int64_t(totals.at("__samples").sum);
  totals.erase("loss");
  totals.erase("__samples");
  return I.metric->finish(totals);
}

FitResult Trainer::fit() {
  auto& I = *impl_;
  const bool rank0 = I.rank0();
  const int64_t spe = I.train.batches_per_epoch();
  ProgressLine progress(rank0 && I.o.progress, nullptr, I.o.progress_interval_s);
  if (I.o.progress_style == "plain" || I.o.progress_style == "terminal")
    progress.set_terminal(I.o.progress_style == "terminal");
  else
    HALO_CHECK_T(ConfigError, I.o.progress_style == "auto", I.o.name, ": progress style must be auto, terminal or plain (got '",
                 I.o.progress_style, "')");
  MetricsLog metrics_log(I.o.metrics_file, rank0, I.resumed);
  FitResult result;
  const auto params = I.model.parameters();
  const int ranks = I.comm.size();
  int64_t grad_elements = 0;
  for (const auto& b : I.sync->buckets()) grad_elements += int64_t(b.elements);
  const int64_t grad_buckets = int64_t(I.sync->buckets().size());
  const uint64_t grad_layout = I.sync->layout_hash();
  Stopwatch run_sw;
  double train_seconds_run = 0;  // training time of this call (for the ETA)
  int64_t steps_run = 0;
  int64_t skipped_logged = 0;  // non-finite steps explained in the log so far
  double last_checkpoint = now_seconds();
  bool saved_now = false;  // the state in the checkpoint file is the current one
  const bool watch_signals = stop_signal_handlers_installed();
  const bool timed = I.o.checkpoint_every_minutes > 0 && !I.o.checkpoint_path.empty();
  bool checkpoint_due = false;  // from the step's flags
  int stop_signal = 0;          // from the step's flags: SIGTERM, SIGUSR1, -1 (another request) or 0

  auto log_line = [&](const std::string& s) {
    progress.finish_line();
    log::info(s);
  };
  // The end of a run stopped by a signal (stop_signal.hpp), its checkpoint already written.
  auto stopped_by = [&](int sig, const std::string& where) {
    log_line(str(I.o.name, ": stopped by ", sig == SIGTERM ? "SIGTERM" : sig == SIGUSR1 ? "SIGUSR1" : "a stop request",
                 " ", where, " (", I.global_step, " steps done)",
                 I.o.checkpoint_path.empty() ? std::string("; no checkpoint.path, nothing saved")
                                             : "; resume from '" + I.o.checkpoint_path + "' with --resume"));
    clear_stop_request();
    result.interrupted = true;
    result.stop_signal = sig;
    result.epochs_done = I.epochs_done;
    result.global_step = I.global_step;
    result.seconds = run_sw.seconds();
    return result;
  };

  I.model.train();
  for (int epoch = I.epochs_done; epoch < I.o.epochs; ++epoch) {
    if (I.o.mllog) I.o.mllog->epoch_start(epoch + 1);
    I.train.start_epoch(epoch);
    // A resumed run skips the batches its checkpoint had already trained on: the epoch's
    // order is a function of (seed, epoch), so the rest comes out as it would have.
    for (int64_t s = 0; s < I.step_in_epoch; ++s)
      HALO_CHECK_T(IOError, I.train.next() != nullptr, I.o.name, ": checkpoint position (step ", I.step_in_epoch,
                   " of epoch ", epoch + 1, ") is beyond the epoch's ", spe, " batches");
    double loss_sum = 0, loss_count = 0;
    if (I.step_in_epoch > 0 && (rank0 || I.resumed_loss_per_rank)) {
      loss_sum = I.resumed_loss_sum;
      loss_count = I.resumed_loss_count;
    }
    if (I.step_in_epoch == 0) I.epoch_skipped_steps = I.epoch_skipped_samples = 0;  // else: from the checkpoint
    TimeAccumulator times;
    double epoch_samples_local = 0;
    Stopwatch epoch_sw;
    double running_loss = 0;
    int64_t running_n = 0;
    bool nonfinite_pending = false;  // a micro-batch's loss was non-finite: its accumulated step is skipped

    // On a GPU the next batch is copied to the device while the current step runs.
    std::unique_ptr<DeviceBatchQueue> on_device;
    if (I.o.device.is_cuda()) on_device = std::make_unique<DeviceBatchQueue>(I.train, I.o.device);
    // Device batches do not carry the loader's Batch: their bad-sample counts are taken from
    // the loader's running total instead (which runs up to one prefetched batch ahead).
    int64_t loader_skipped_seen = I.train.epoch_stats().skipped_samples;

    for (;;) {
      const double t0 = now_seconds();
      Tensor x, y;
      int64_t batch_size = 0;
      const data::Batch* host_batch = nullptr;  // for naming the samples of a non-finite step
      if (on_device) {
        const DeviceBatch* db = on_device->next();
        if (db) {
          x = I.prepare_input(db->x);  // already in the loader's layout: no work unless it differs
          y = db->y;
          batch_size = db->size;
        }
      } else if (const data::Batch* hb = I.train.next()) {
        host_batch = hb;
        x = I.prepare_input(hb->x);
        y = I.prepare_target(hb->y);
        batch_size = hb->size;
      }
      const double td = now_seconds();
      times.add("data", td - t0);
      // Every rank must be at the same step before the gradient allreduces (or, at the end
      // of the epoch, before the reductions that follow): checked in one small collective
      // that matches whatever the ranks hold, so a disagreement is a clear error.
      if (I.guard)
        I.guard->check({epoch, I.step_in_epoch, spe, batch_size > 0, grad_buckets, grad_elements, grad_layout});
      const double t1 = now_seconds();
      times.add("comm", t1 - td);
      if (batch_size == 0) break;
      I.model.zero_grad();
      Tensor pred = I.model.forward(x);
      const double l = I.loss.forward(pred, y);
      I.model.backward(I.scaler ? I.scaler->scale_loss_grad(I.loss.backward()) : I.loss.backward());
      const double t2 = now_seconds();
      const bool ready = I.sync->wait();
      const double t3 = now_seconds();
      // One tiny allreduce per step, summed over ranks, so every rank takes the same
      // decisions: [0] ranks whose loss is non-finite, [1] bad samples the loaders replaced in
      // this step's batches (rank 0's progress line shows the global count), [2] rank 0's
      // checkpoint clock says a timed checkpoint is due, [3..5] ranks that received SIGTERM,
      // SIGUSR1 or another stop request (stop_signal.hpp); [2..5] are acted on after the step.
      const bool my_loss_nonfinite = !std::isfinite(l);
      const int stop_sig = watch_signals ? stop_requested() : 0;
      int64_t flags[6] = {my_loss_nonfinite ? 1 : 0,
                          0,
                          timed && rank0 && now_seconds() - last_checkpoint >= 60.0 * I.o.checkpoint_every_minutes,
                          stop_sig == SIGTERM,
                          stop_sig == SIGUSR1,
                          stop_sig != 0 && stop_sig != SIGTERM && stop_sig != SIGUSR1};
      if (host_batch) {
        flags[1] = host_batch->skipped;
      } else {
        const int64_t total = I.train.epoch_stats().skipped_samples;
        flags[1] = total - loader_skipped_seen;
        loader_skipped_seen = total;
      }
      I.comm.allreduce_sum(flags, 6, "step flags (non-finite loss, bad samples, timer, stop signal)");
      checkpoint_due = flags[2] > 0;
      stop_signal = flags[3] ? SIGTERM : flags[4] ? SIGUSR1 : flags[5] ? -1 : 0;
      I.epoch_skipped_samples += flags[1];
      nonfinite_pending = nonfinite_pending || flags[0] > 0;
      auto stop_nonfinite = [&](const std::string& what) {
        // Every rank logs what it knows before any of them throws (a driver's MPI_Abort on one
        // rank could cut the others' messages short); the rank that saw the non-finite loss
        // names its batch. Nothing is written: the last checkpoint stays the good one.
        const std::string where = str("epoch ", epoch + 1, ", step ", I.step_in_epoch + 1, "/", spe,
                                      " (global step ", I.global_step + 1, ")");
        const std::string batch =
            host_batch ? describe_batch(I.train.dataset(), host_batch->samples) : std::string("not tracked on the GPU path");
        if (my_loss_nonfinite || flags[0] == 0)
          log::error(I.o.name, ": ", what, " at ", where, "; this rank's batch: ", batch);
        I.comm.barrier("non-finite stop");
        throw NonFiniteError(str(I.o.name, ": ", what, " at ", where, ": stopped (training.on_nonfinite=stop; ",
                                 "skip would skip such steps)",
                                 I.o.checkpoint_path.empty() ? std::string()
                                                             : "; checkpoint '" + I.o.checkpoint_path + "' left as it was"));
      };
      const bool stop_policy = I.o.on_nonfinite == NonFinitePolicy::stop;
      if (stop_policy && flags[0] > 0)
        stop_nonfinite(str("non-finite loss (", flags[0], " rank(s)", my_loss_nonfinite ? str(", this one: ", l) : "", ")"));
      if (ready) {
        // Every rank holds the same averaged gradients, so all take the same decisions. The
        // finiteness test is the loss scaler's (grads_finite, inside unscale()).
        const bool grads_ok = I.scaler ? I.scaler->unscale() : optim::grads_finite(params);
        // An overflow the scaler can still back off from is its business, not a failure.
        const bool scaler_backs_off = I.scaler && !grads_ok && I.scaler->scale() > I.scaler->options().min_scale;
        bool nonfinite = nonfinite_pending || (!grads_ok && !scaler_backs_off);
        nonfinite_pending = false;
        bool finite = grads_ok && !nonfinite;
        if (finite && I.o.clip_grad_norm > 0 && !std::isfinite(optim::clip_grad_norm(params, I.o.clip_grad_norm)))
          finite = false, nonfinite = true;
        if (nonfinite && stop_policy) stop_nonfinite("non-finite gradient after the allreduce");
        if (finite) {
          I.opt.step();
        } else if (nonfinite) {
          ++I.epoch_skipped_steps;
          // The first few are explained in full; after that the counts (progress line,
          // epoch summary, metrics file) say how many, without a line per step and rank.
          constexpr int64_t kExplained = 10;
          if (++skipped_logged > kExplained) {
          } else if (my_loss_nonfinite && host_batch)
            log::warn(I.o.name, ": non-finite loss at epoch ", epoch + 1, " step ", I.step_in_epoch + 1,
                      "; step skipped (training.on_nonfinite=skip); this rank's batch: ",
                      describe_batch(I.train.dataset(), host_batch->samples));
          else
            log::info(I.o.name, ": non-finite ", flags[0] > 0 ? "loss" : "gradient", " at epoch ", epoch + 1, " step ",
                      I.step_in_epoch + 1, "; step skipped on every rank (training.on_nonfinite=skip)");
          if (skipped_logged == kExplained)
            log::info(I.o.name, ": further non-finite steps are skipped and counted without a message");
        } else {
          log::debug(I.o.name, ": gradients overflowed at loss scale ", I.scaler->scale(), " (step ",
                     I.global_step + 1, " skipped; the scale backs off)");
        }
        if (I.scaler) I.scaler->update(!grads_ok);
      }
      const double t4 = now_seconds();
      times.add("compute", (t2 - t1) + (t4 - t3));
      times.add("comm", t3 - t2);
      // A non-finite loss (on any rank: all leave it out alike) would make the epoch's
      // mean NaN; the skipped steps are counted instead.
      if (flags[0] == 0) {
        loss_sum += l * double(batch_size);
        loss_count += double(batch_size);
        running_loss += l;
        ++running_n;
      }
      epoch_samples_local += double(batch_size);
      ++I.step_in_epoch;
      ++I.global_step;
      ++steps_run;
      saved_now = false;

      const double epoch_elapsed = epoch_sw.seconds();
      if (rank0 && I.o.progress) {
        ProgressState ps;
        ps.epoch = epoch + 1;
        ps.epochs = I.o.epochs;
        ps.step = I.step_in_epoch;
        ps.steps_per_epoch = spe;
        ps.loss = running_n > 0 ? running_loss / double(running_n) : 0.0;
        ps.skipped_steps = I.epoch_skipped_steps;
        ps.skipped_samples = I.epoch_skipped_samples;
        // The other ranks' batches are as large as this one's up to one sample.
        ps.samples_per_s = epoch_elapsed > 0 ? epoch_samples_local * ranks / epoch_elapsed : 0;
        ps.data_wait_pct = epoch_elapsed > 0 ? 100.0 * times.get("data") / epoch_elapsed : 0;
        const double per_step = (train_seconds_run + epoch_elapsed) / double(steps_run);
        const int64_t steps_left = int64_t(I.o.epochs - epoch) * spe - I.step_in_epoch;
        const int vals_left = I.val && I.o.validate_every > 0 ? (I.o.epochs - epoch) : 0;
        ps.eta_s = per_step * double(steps_left) + I.last_val_seconds * vals_left;
        progress.update(ps);
      }

      // A stop signal or a due timed checkpoint (agreed on in the step's flags above). At the
      // epoch's last step the epoch is finished first (validation, its checkpoint): a stop
      // request is then acted on at the next epoch's first step.
      if (stop_signal != 0 && I.step_in_epoch < spe) {
        I.save(*this, loss_sum, loss_count);
        return stopped_by(stop_signal, str("at epoch ", epoch + 1, " step ", I.step_in_epoch, "/", spe));
      }
      if (checkpoint_due && I.step_in_epoch < spe) {
        I.save(*this, loss_sum, loss_count);
        last_checkpoint = now_seconds();
        saved_now = true;
      }
      if (I.o.stop_after_steps >= 0 && I.global_step >= I.o.stop_after_steps && I.step_in_epoch < spe) {
        I.save(*this, loss_sum, loss_count);
        log_line(str(I.o.name, ": stopped after ", I.global_step, " steps (stop_after_steps) at epoch ", epoch + 1,
                     " step ", I.step_in_epoch, "/", spe,
                     I.o.checkpoint_path.empty() ? std::string() : "; resume from '" + I.o.checkpoint_path + "'"));
        result.interrupted = true;
        result.epochs_done = I.epochs_done;
        result.global_step = I.global_step;
        result.seconds = run_sw.seconds();
        return result;
      }
    }
    const double train_s = epoch_sw.seconds();
    train_seconds_run += train_s;
    if (I.o.mllog) I.o.mllog->epoch_stop(epoch + 1);

    // The epoch is complete: reduce its numbers over ranks.
    EpochRecord r;
    r.epoch = epoch + 1;
    r.global_step = I.global_step;
    r.lr = I.opt.lr();
    dist::MetricReducer red;
    red.add("loss", loss_sum, loss_count);
    red.add("compute", times.get("compute"), 1);
    red.add("comm", times.get("comm"), 1);
    red.add("data", times.get("data"), 1);
    red.add("samples_run", epoch_samples_local, 1);
    auto tot = red.reduce_totals(I.comm);
    r.train_loss = tot["loss"].count > 0 ? tot["loss"].sum / tot["loss"].count : 0;
    r.train_samples = int64_t(tot["loss"].count);
    r.train_seconds = train_s;
    r.skipped_steps = I.epoch_skipped_steps;
    r.skipped_samples = I.epoch_skipped_samples;
    r.samples_per_s = train_s > 0 ? tot["samples_run"].sum / train_s : 0;
    // Averages over ranks: a rank that waits much longer than the rest shows in the max,
    // but the mean is what the epoch's time went to.
    r.compute_seconds = tot["compute"].sum / ranks;
    r.comm_seconds = tot["comm"].sum / ranks;
    r.data_seconds = tot["data"].sum / ranks;
    r.data_wait_pct = train_s > 0 ? 100.0 * r.data_seconds / train_s : 0;

    I.epochs_done = epoch + 1;
    I.step_in_epoch = 0;

    const bool last = I.epochs_done == I.o.epochs;
    if (I.val && I.o.validate_every > 0 && (I.epochs_done % I.o.validate_every == 0 || last)) {
      Stopwatch vsw;
      if (I.o.mllog) I.o.mllog->eval_start(epoch + 1);
      r.val_metrics = validate(epoch, &r.val_loss, &r.val_samples);
      if (I.o.mllog) I.o.mllog->eval_stop(epoch + 1, r.val_metrics);
      r.validated = true;
      r.val_skipped_samples = I.val->epoch_stats().skipped_samples;
      I.comm.allreduce_sum(&r.val_skipped_samples, 1, "validation bad samples");
      r.val_seconds = vsw.seconds();
      I.last_val_seconds = r.val_seconds;
      result.last_val_metrics = r.val_metrics;
    }

    if (rank0) {
      MetricRecord m{{"epoch", int64_t(r.epoch)},
                     {"step", r.global_step},
                     {"lr", r.lr},
                     {"train_loss", r.train_loss},
                     {"train_samples", r.train_samples},
                     {"train_seconds", r.train_seconds},
                     {"samples_per_s", r.samples_per_s},
                     {"compute_seconds", r.compute_seconds},
                     {"comm_seconds", r.comm_seconds},
                     {"data_seconds", r.data_seconds},
                     {"data_wait_pct", r.data_wait_pct},
                     {"skipped_steps", r.skipped_steps},
                     {"skipped_samples", r.skipped_samples},
                     {"elapsed_seconds", run_sw.seconds()}};
      if (r.validated) {
        m["val_loss"] = r.val_loss;
        m["val_samples"] = r.val_samples;
        m["val_seconds"] = r.val_seconds;
        m["val_skipped_samples"] = r.val_skipped_samples;
        for (const auto& [k, v] : r.val_metrics) m["val_" + k] = v;
      }
      metrics_log.write(m);
    }
    if (I.o.epoch_summary) {
      std::string s = str(I.o.name, ": epoch ", r.epoch, "/", I.o.epochs, "  train loss ", r.train_loss);
      if (r.validated) {
        s += str("  val loss ", r.val_loss);
        for (const auto& [k, v] : r.val_metrics) s += str("  val ", k, " ", v);
      }
      if (r.skipped_steps > 0) s += str("  skipped steps ", r.skipped_steps);
      if (r.skipped_samples > 0) s += str("  bad samples ", r.skipped_samples);
      if (r.val_skipped_samples > 0) s += str("  bad validation samples ", r.val_skipped_samples);
      char buf[160];
      std::snprintf(buf, sizeof buf, "  %.1f samples/s  compute %.1fs comm %.1fs data %.1fs  lr %.3g", r.samples_per_s,
                    r.compute_seconds, r.comm_seconds, r.data_seconds, r.lr);
      log_line(s + buf);
    }
    result.epochs.push_back(r);

    bool reached = false;
    if (r.validated && !I.o.target_metric.empty()) {
      auto it = r.val_metrics.find(I.o.target_metric);
      HALO_CHECK_T(ConfigError, it != r.val_metrics.end(), I.o.name, ": target metric '", I.o.target_metric,
                   "' is not among the validation metrics");
      // The value was reduced over ranks, so every rank takes the same decision.
      reached = I.o.target_lower_is_better ? it->second <= I.o.target_value : it->second >= I.o.target_value;
    }
    if (I.o.checkpoint_every_epochs > 0 && I.epochs_done % I.o.checkpoint_every_epochs == 0 && !last && !reached) {
      I.save(*this, 0, 0);
      last_checkpoint = now_seconds();
      saved_now = true;
    }
    // A signal that came during the epoch's last step or its validation is acted on here, not
    // after the next epoch's first step (with one step per epoch it would never be): one more
    // small allreduce per epoch, so every rank agrees.
    if (!reached && !last && watch_signals) {
      const int mine = stop_requested();
      int64_t seen[3] = {mine == SIGTERM, mine == SIGUSR1, mine != 0 && mine != SIGTERM && mine != SIGUSR1};
      I.comm.allreduce_sum(seen, 3, "stop signal at the end of the epoch");
      if (const int sig = seen[0] ? SIGTERM : seen[1] ? SIGUSR1 : seen[2] ? -1 : 0) {
        if (!saved_now) I.save(*this, 0, 0);
        return stopped_by(sig, str("at the end of epoch ", r.epoch));
      }
    }
    if (!reached && !last && I.o.stop_after_steps >= 0 && I.global_step >= I.o.stop_after_steps) {
      if (!saved_now) I.save(*this, 0, 0);
      log_line(str(I.o.name, ": stopped after ", I.global_step, " steps (stop_after_steps) at the end of epoch ",
                   r.epoch));
      result.interrupted = true;
      result.epochs_done = I.epochs_done;
      result.global_step = I.global_step;
      result.seconds = run_sw.seconds();
      return result;
    }
    if (reached) {
      result.target_reached = true;
      log_line(str(I.o.name, ": target ", I.o.target_metric, " ", I.o.target_lower_is_better ? "<= " : ">= ",
                   I.o.target_value, " reached after epoch ", r.epoch));
      break;
    }
  }
  if (I.o.checkpoint_at_end && !saved_now) I.save(*this, 0, 0);
  progress.finish_line();
  {
    double samples = 0, seconds = 0;
    for (const auto& e : result.epochs) {
      samples += double(e.train_samples);
      seconds += e.train_seconds;
    }
    std::string s = str(I.o.name, ": done: ", I.epochs_done, " epochs, ", I.global_step, " steps in ",
                        ProgressLine::format_duration(run_sw.seconds()));
    if (seconds > 0) s += str(", ", int64_t(samples / seconds), " samples/s");
    for (const auto& [k, v] : result.last_val_metrics) s += str(", val ", k, " ", v);
    if (!I.o.target_metric.empty())
      s += result.target_reached ? str(", target ", I.o.target_metric, " reached")
                                 : str(", target ", I.o.target_metric, " not reached");
    if (!I.o.checkpoint_path.empty() && (I.o.checkpoint_at_end || saved_now))
      s += str(", checkpoint '", I.o.checkpoint_path, "'");
    log::info(s);
  }
  if (I.guard && I.guard->checks() > 0)
    log::debug(I.o.name, ": step guard: ", I.guard->checks(), " checks, ",
               1e6 * I.guard->seconds() / double(I.guard->checks()), " us each on average (waits included)");
  result.epochs_done = I.epochs_done;
  result.global_step = I.global_step;
  result.seconds = run_sw.seconds();
  return result;
}

}  // namespace halo::train
