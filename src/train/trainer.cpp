#include "halo/train/trainer.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "halo/cuda/runtime.hpp"
#include "halo/dist/model_sync.hpp"
#include "halo/dist/root_read.hpp"
#include "halo/ops/registry.hpp"
#include "halo/optim/clip.hpp"
#include "halo/tensor/allocator.hpp"
#include "halo/train/device_support.hpp"
#include "halo/util/error.hpp"
#include "halo/util/log.hpp"
#include "halo/util/timer.hpp"
#include "train/trainer_impl.hpp"

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

// "sample 12 (file a.h5), sample 40 (file b.h5, row 3), ...": the batch's samples, so a
// non-finite step can be traced to its data (halo-data verify FILE checks a file).
std::string describe_batch(const data::Dataset& ds, const std::vector<int64_t>& samples) {
  constexpr size_t kMax = 16;  // enough to find the culprit; a 1024-sample batch stays one line
  std::string out;
  for (size_t k = 0; k < samples.size() && k < kMax; ++k)
    out += str(k ? ", " : "", "sample ", samples[k], " (", ds.describe(samples[k]), ")");
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

void Trainer::Impl::sync_buffers() {
  if (comm.size() < 2) return;
  std::vector<Tensor*> bufs;
  for (auto* b : model.buffers()) bufs.push_back(&b->value);
  if (!bufs.empty()) dist::broadcast_tensors(comm, bufs, 0);
}

Tensor Trainer::Impl::prepare_input(const Tensor& x) const {
  Tensor t = x;
  if (o.input_format == MemoryFormat::channels_last && t.dim() >= 4 && !t.is_channels_last())
    t = t.to_memory_format(MemoryFormat::channels_last);
  if (t.device() != o.device) t = t.to(o.device);
  // Mixed precision: f32 batches become bf16 here, once (a model fed f64 stays f64).
  if (o.precision == DType::bf16 && t.dtype() == DType::f32) t = t.to(DType::bf16);
  return t;
}

namespace {
// Validation's loss and metrics are computed in f32 whatever the activations' precision.
Tensor for_metrics(const Tensor& prediction) {
  return prediction.dtype() == DType::bf16 ? prediction.to(DType::f32) : prediction;
}
}  // namespace

Tensor Trainer::Impl::prepare_target(const Tensor& y) const { return y.device() == o.device ? y : y.to(o.device); }

// Collective: every rank calls it; rank 0 writes. `epoch_loss_*` are this rank's partial
// sums of an unfinished epoch. Each rank's pair is kept (gathered by a sum over slots that
// are zero elsewhere, which is exact), so a resume on as many ranks continues every rank's
// running sum exactly and reports the epoch's loss to the bit; the totals serve a resume
// on another rank count.
void Trainer::Impl::save(const Trainer& self, double epoch_loss_sum, double epoch_loss_count) {
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
    // Under spatial parallelism every replica's sums stand once per rank of its grid.
    const double copies = double(comm.size() / data.size());
    total[0] /= copies;
    total[1] /= copies;
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
  if (rank0()) train::save_checkpoint(o.checkpoint_path, d, o.checkpoint_keep);
  // Nobody moves on (or exits) before the file is in place.
  comm.barrier("checkpoint written");
  log::debug(o.name, ": checkpoint '", o.checkpoint_path, "' written in ", sw.seconds(), " s");
}

Trainer::Trainer(dist::Communicator comm, nn::Model& model, optim::Optimizer& optimizer, nn::Loss& loss,
                 data::DataLoader& train, data::DataLoader* val, std::unique_ptr<ValidationMetric> metric,
                 TrainerOptions options)
    : impl_(std::make_unique<Impl>(std::move(comm), model, optimizer, loss, &train, val, std::move(metric),
                                   std::move(options))) {
  auto& I = *impl_;
  HALO_CHECK_T(ConfigError, I.o.epochs >= 1, I.o.name, ": epochs must be at least 1 (got ", I.o.epochs, ")");
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
  start();
}

Trainer::Trainer(dist::Communicator comm, nn::Model& model, optim::Optimizer& optimizer, nn::Loss& loss,
                 TrainerOptions options)
    : impl_(std::make_unique<Impl>(std::move(comm), model, optimizer, loss, nullptr, nullptr, nullptr,
                                   std::move(options))) {
  start();
}

void Trainer::start() {
  auto& I = *impl_;
  nn::Model& model = I.model;
  HALO_CHECK_T(ConfigError, model.compiled(), I.o.name, ": compile the model before building the trainer");
  // A layer without a CUDA kernel must stop the run here, not in the middle of a step.
  check_model_runs_on(model, I.o.device, I.o.name);
  for (auto* p : model.parameters())
    HALO_CHECK_T(ConfigError, p->value.device() == I.o.device, I.o.name, ": parameter '", p->name, "' is on ",
                 p->value.device().str(), " but the trainer's device is ", I.o.device.str(),
                 ": call model.to(device) before building the trainer");
  // The GPU of the run becomes this thread's current device (a program of its own may not
  // have set it): work without a DeviceGuard and new contexts go there, not to GPU 0.
  if (I.o.device.is_cuda()) {
    cuda::set_device(I.o.device.index);
    for (int i = 0; i < 5; ++i) I.phase_events.push_back(std::make_unique<cuda::Event>(I.o.device.index, true));
  }
  HALO_CHECK_T(ConfigError, I.o.checkpoint_keep >= 1, I.o.name, ": checkpoint_keep must be at least 1 (got ",
               I.o.checkpoint_keep, ")");
  if (I.o.loss_scaling) I.scaler = std::make_unique<optim::DynamicLossScaler>(model.parameters(), I.o.loss_scaler);
  // bf16 convolutions or pooling on a CPU oneDNN has no bf16 kernels for stop here, not in
  // the first such layer's forward.
  if (I.o.precision == DType::bf16 && !I.o.device.is_cuda() && !ops::cpu_bf16_supported()) {
    for (const auto& node : model.nodes()) {
      const auto families = node.layer ? node.layer->op_families() : std::nullopt;
      if (!families) continue;
      for (ops::OpFamily f : *families)
        HALO_CHECK_T(ConfigError, f != ops::OpFamily::conv && f != ops::OpFamily::pool, I.o.name,
                     ": training.precision=bf16: layer '", node.name, "' (", node.layer->type(),
                     ") needs bf16 convolutions or pooling, and bf16 convolutions on the CPU need oneDNN's bf16 "
                     "kernels, which this build or CPU lacks (on x86 they need AVX-512: avx512_core or newer); "
                     "train in f32 (training.precision=f32)");
    }
  }
  if (I.o.cuda_graph) {
    HALO_CHECK_T(ConfigError, I.o.device.is_cuda(), I.o.name, ": training.cuda_graph needs a GPU (the trainer's device is ",
                 I.o.device.str(), "); set training.device=cuda or training.cuda_graph=false");
    HALO_CHECK_T(ConfigError, !I.o.loss_scaling, I.o.name, ": training.cuda_graph does not take training.loss_scaling "
                 "(the loss scale is a host value a graph would freeze); bf16 needs no loss scaling");
    HALO_CHECK_T(ConfigError, I.o.grad_sync.accumulation_steps == 1, I.o.name, ": training.cuda_graph does not take "
                 "gradient accumulation (", I.o.grad_sync.accumulation_steps, " micro-batches per step)");
    I.graphs = std::make_unique<detail::StepGraphs>(I.o.device.index, I.o.name);
  }
  if (!I.o.resume_from.empty()) {
    dist::check_same_model(I.comm, model);
    load_state(load_resume_checkpoint());
    I.resumed = true;
    log::info(I.o.name, ": resumed from '", I.o.resume_from, "' at epoch ", I.epochs_done + 1, " step ",
              I.step_in_epoch, " (", I.global_step, " steps done)");
  } else {
    dist::broadcast_model(I.comm, model);
  }
  I.params = model.parameters();
  I.sync = std::make_unique<dist::GradientSynchronizer>(I.data, I.params, I.o.grad_sync);
  I.sync->attach(model);
  for (const auto& b : I.sync->buckets()) I.grad_elements += int64_t(b.elements);
  I.grad_buckets = int64_t(I.sync->buckets().size());
  I.grad_layout = I.sync->layout_hash();
  if (I.o.step_guard) I.guard = std::make_unique<dist::StepGuard>(I.comm, I.o.name);
  // The temporaries of initialisation, checkpoint loading and broadcasts are sized like
  // parameters, not like the activations the steps allocate: cached, they would only add
  // to every rank's memory for the whole run (a quarter of a GiB at CosmoFlow-256).
  allocator_for(Device::cpu()).empty_cache();
}

Trainer::~Trainer() = default;

int Trainer::epochs_done() const { return impl_->epochs_done; }
int64_t Trainer::step_in_epoch() const { return impl_->step_in_epoch; }
int64_t Trainer::global_step() const { return impl_->global_step; }
void Trainer::add_callback(std::shared_ptr<Callback> callback) { impl_->callbacks.push_back(std::move(callback)); }
void Trainer::save_checkpoint() { impl_->save(*this, 0, 0); }

CheckpointData Trainer::load_resume_checkpoint() {
  auto& I = *impl_;
  // Rank 0 alone reads the file system: it picks the newest checkpoint that loads and passes
  // its checksums, and every rank receives that one's contents (so N ranks neither open the
  // file N times nor resume from different states). A failure on rank 0 is thrown on every
  // rank with rank 0's message.
  std::vector<std::string> candidates{I.o.resume_from};
  candidates.insert(candidates.end(), I.o.resume_fallbacks.begin(), I.o.resume_fallbacks.end());
  CheckpointData mine;  // rank 0's, as loaded: it decodes nothing
  size_t chosen = 0;
  const std::string got = dist::read_on_root(I.comm.comm(), [&] {
    mine = candidates.size() == 1 ? load_checkpoint(candidates[0]) : load_newest_valid_checkpoint(candidates, &chosen);
    // The newer ones that failed are set aside, not left in the rotation: the next write
    // would otherwise keep a corrupt file as the "older checkpoint" in place of this one.
    for (size_t j = 0; j < chosen; ++j) {
      const std::string aside = candidates[j] + ".corrupt";
      if (std::rename(candidates[j].c_str(), aside.c_str()) == 0)
        log::warn(I.o.name, ": moved the unusable checkpoint '", candidates[j], "' to '", aside, "'");
    }
    return dist::pack_strings({std::to_string(chosen), encode_checkpoint(mine)});
  });
  if (I.rank0()) {
    I.o.resume_from = candidates[chosen];
    if (chosen > 0)
      log::warn(I.o.name, ": resuming from the older checkpoint '", I.o.resume_from, "' (see the warnings above)");
    return mine;
  }
  const std::vector<std::string> parts = dist::unpack_strings(got);
  HALO_CHECK_T(IOError, parts.size() == 2, "resume: malformed broadcast of the checkpoint");
  chosen = size_t(std::stoull(parts[0]));
  HALO_CHECK_T(IOError, chosen < candidates.size(), "resume: rank 0 chose checkpoint ", chosen, " of ",
               candidates.size());
  I.o.resume_from = candidates[chosen];
  return decode_checkpoint(parts[1]);
}

CheckpointData Trainer::checkpoint_state() const {
  auto& I = *impl_;
  CheckpointData d = training_state(I.model, I.opt, I.scaler.get(), I.position());
  for (auto& [k, v] : I.o.checkpoint_strings) d.strings[k] = v;
  return d;
}

void Trainer::load_state(const CheckpointData& d) {
  auto& I = *impl_;
  const std::string& path = I.o.resume_from.empty() ? std::string("checkpoint") : I.o.resume_from;
  const TrainingPosition pos = restore_training_state(d, I.model, I.opt, I.scaler.get(), path);
  I.epochs_done = pos.epoch;
  I.step_in_epoch = pos.step_in_epoch;
  I.global_step = pos.global_step;
  const int64_t global_batch = I.train ? I.train->batch_size() * I.data.size() : 0;
  // Every rank reads the same checkpoint and takes this decision alike.
  HALO_CHECK_T(ConfigError, pos.global_batch == 0 || global_batch == 0 || pos.global_batch == global_batch, I.o.name,
               ": checkpoint '", path, "' was trained at a global batch of ", pos.global_batch, " (", pos.ranks,
               " ranks x ", pos.global_batch / std::max(1, pos.ranks), "); this run's is ", global_batch, " (",
               I.data.size(), I.data.size() == I.comm.size() ? " ranks x " : " replicas x ", I.train ? I.train->batch_size() : 0,
               "): its position in the epoch and the step-based learning-rate schedule would not carry over; resume "
               "with the same global batch (data.batch_size=", pos.global_batch, " in the drivers)");
  const bool same_layout = pos.ranks == I.comm.size() && pos.replicas == I.data.size();
  if (!same_layout && I.rank0())  // once, not once per rank
    log::warn(I.o.name, ": checkpoint '", path, "' was written by ", pos.ranks, " ranks",
              pos.replicas != pos.ranks ? str(" (", pos.replicas, " replicas)") : std::string(), ", resuming on ",
              I.comm.size(), I.data.size() != I.comm.size() ? str(" (", I.data.size(), " replicas)") : std::string(),
              ": training continues, but not bit for bit as an uninterrupted run would");
  auto real = [&](const char* k) {
    auto it = d.reals.find(k);
    return it == d.reals.end() ? 0.0 : it->second;
  };
  I.resumed_loss_sum = real("epoch_loss_sum");
  I.resumed_loss_count = real("epoch_loss_count");
  I.resumed_loss_per_rank = false;
  auto per_rank = d.tensors.find(kEpochLossPerRank);
  if (same_layout && per_rank != d.tensors.end() && per_rank->second.numel() == 2 * I.comm.size()) {
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

StepResult Trainer::step(const Tensor& x, const Tensor& y) {
  auto& I = *impl_;
  StepContext ctx;
  ctx.start = now_seconds();
  HALO_CHECK_T(ShapeError, x.defined() && y.defined() && x.dim() >= 1 && x.size(0) >= 1, I.o.name,
               ": step() needs a batch of at least one sample");
  return run_step(I.prepare_input(x), I.prepare_target(y), x.size(0), ctx);
}

StepResult Trainer::step(const data::Batch& batch) {
  auto& I = *impl_;
  StepContext ctx;
  ctx.start = now_seconds();
  ctx.batch = &batch;
  ctx.dataset = batch.source;
  ctx.fill_flags = [&batch](int64_t* flags) { flags[1] = batch.skipped; };
  HALO_CHECK_T(ShapeError, batch.size >= 1, I.o.name, ": step() needs a batch of at least one sample");
  StepResult r = run_step(I.prepare_input(batch.x), I.prepare_target(batch.y), batch.size, ctx);
  return r;
}

StepResult Trainer::run_step(const Tensor& x, const Tensor& y, int64_t batch_size, StepContext& ctx) {
  auto& I = *impl_;
  const auto& params = I.params;
  const int epoch = ctx.epoch >= 0 ? ctx.epoch : I.epochs_done;
  const double td = now_seconds();
  // Every rank must be at the same step before the gradient allreduces: checked in one small
  // collective that matches whatever the ranks hold, so a disagreement is a clear error.
  if (I.guard)
    I.guard->check({epoch, I.step_in_epoch, ctx.steps_per_epoch, true, I.grad_buckets, I.grad_elements, I.grad_layout});
  const double t1 = now_seconds();
  auto mark = [&I](int phase) {
    if (!I.phase_events.empty()) I.phase_events[size_t(phase)]->record(cuda::current_stream(I.o.device.index));
  };
  mark(0);
  double l = 0, tf = 0, t2 = 0;
  bool ready = true, replayed = false;
  if (I.graphs) {
    // Loss scaling and accumulation are refused at start(): the wait always completes.
    auto body = [&I](const Tensor& bx, const Tensor& by) {
      I.model.zero_grad();
      Tensor p = I.model.forward(bx);
      I.model.backward(I.loss.gradient(p, by));
      I.sync->wait();
      return p;
    };
    const detail::StepGraphs::Out out = I.graphs->run(
        x, y, body, [&I] { I.sync->watch_current_stream(I.o.name + ": the training step's CUDA graph"); });
    l = I.loss.forward(out.prediction, out.target);
    replayed = out.replayed;
    tf = t2 = now_seconds();
    mark(1);
    mark(2);
  } else {
    I.model.zero_grad();
    Tensor pred = I.model.forward(x);
    l = I.loss.forward(pred, y);
    tf = now_seconds();
    mark(1);
    I.model.backward(I.scaler ? I.scaler->scale_loss_grad(I.loss.backward()) : I.loss.backward());
    t2 = now_seconds();
    mark(2);
    ready = I.sync->wait();
  }
  const double t3 = now_seconds();
  mark(3);
  // One tiny allreduce per step, summed over ranks, so every rank takes the same decisions
  // (the flags are listed with StepContext).
  const bool my_loss_nonfinite = !std::isfinite(l);
  int64_t* flags = ctx.flags;
  flags[0] = my_loss_nonfinite ? 1 : 0;
  if (ctx.fill_flags) ctx.fill_flags(flags);
  I.comm.allreduce_sum(flags, 6, "step flags (non-finite loss, bad samples, timer, stop signal)");
  I.epoch_skipped_samples += flags[1];
  I.nonfinite_pending = I.nonfinite_pending || flags[0] > 0;
  // "epoch 2, step 5/10 (global step 15)" inside fit(), "global step 15" from a program's loop;
  // built only for the messages of a non-finite step.
  auto where = [&] {
    return ctx.epoch >= 0 ? str("epoch ", epoch + 1, ", step ", I.step_in_epoch + 1, "/", ctx.steps_per_epoch,
                                " (global step ", I.global_step + 1, ")")
                          : str("global step ", I.global_step + 1);
  };
  auto at = [&] {
    return ctx.epoch >= 0 ? str("epoch ", epoch + 1, " step ", I.step_in_epoch + 1) : str("global step ", I.global_step + 1);
  };
  auto batch_names = [&] {
    return ctx.batch && ctx.dataset ? describe_batch(*ctx.dataset, ctx.batch->samples) : std::string(ctx.untracked);
  };
  auto stop_nonfinite = [&](const std::string& what) {
    // Every rank logs what it knows before any of them throws (a driver's MPI_Abort on one
    // rank could cut the others' messages short); the rank that saw the non-finite loss
    // names its batch. Nothing is written: the last checkpoint stays the good one.
    if (my_loss_nonfinite || flags[0] == 0)
      log::error(I.o.name, ": ", what, " at ", where(), "; this rank's batch: ", batch_names());
    I.comm.barrier("non-finite stop");
    throw NonFiniteError(str(I.o.name, ": ", what, " at ", where(), ": stopped (training.on_nonfinite=stop; ",
                             "skip would skip such steps)",
                             I.o.checkpoint_path.empty() ? std::string()
                                                         : "; checkpoint '" + I.o.checkpoint_path + "' left as it was"));
  };
  StepResult r;
  r.loss = l;
  r.loss_finite = flags[0] == 0;
  r.batch_size = batch_size;
  r.graph_replay = replayed;
  const bool stop_policy = I.o.on_nonfinite == NonFinitePolicy::stop;
  if (stop_policy && flags[0] > 0)
    stop_nonfinite(str("non-finite loss (", flags[0], " rank(s)", my_loss_nonfinite ? str(", this one: ", l) : "", ")"));
  if (ready) {
    // Every rank holds the same averaged gradients, so all take the same decisions. The
    // finiteness test is the loss scaler's (grads_finite, inside unscale()).
    const bool grads_ok = I.scaler ? I.scaler->unscale() : optim::grads_finite(params);
    // An overflow the scaler can still back off from is its business, not a failure.
    const bool scaler_backs_off = I.scaler && !grads_ok && I.scaler->scale() > I.scaler->options().min_scale;
    bool nonfinite = I.nonfinite_pending || (!grads_ok && !scaler_backs_off);
    I.nonfinite_pending = false;
    bool finite = grads_ok && !nonfinite;
    if (finite && I.o.clip_grad_norm > 0 && !std::isfinite(optim::clip_grad_norm(params, I.o.clip_grad_norm)))
      finite = false, nonfinite = true;
    if (nonfinite && stop_policy) stop_nonfinite("non-finite gradient after the allreduce");
    if (finite) {
      I.opt.step();
      r.updated = true;
    } else if (nonfinite) {
      ++I.epoch_skipped_steps;
      r.skipped = true;
      // The first few are explained in full; after that the counts (progress line,
      // epoch summary, metrics file) say how many, without a line per step and rank.
      constexpr int64_t kExplained = 10;
      if (++I.skipped_logged > kExplained) {
      } else if (my_loss_nonfinite && ctx.batch && ctx.dataset)
        log::warn(I.o.name, ": non-finite loss at ", at(), "; step skipped (training.on_nonfinite=skip); this rank's batch: ",
                  batch_names());
      else
        log::info(I.o.name, ": non-finite ", flags[0] > 0 ? "loss" : "gradient", " at ", at(),
                  "; step skipped on every rank (training.on_nonfinite=skip)");
      if (I.skipped_logged == kExplained)
        log::info(I.o.name, ": further non-finite steps are skipped and counted without a message");
    } else {
      r.overflow = true;
      log::debug(I.o.name, ": gradients overflowed at loss scale ", I.scaler->scale(), " (step ", I.global_step + 1,
                 " skipped; the scale backs off)");
    }
    if (I.scaler) I.scaler->update(!grads_ok);
  }
  const double t4 = now_seconds();
  ++I.step_in_epoch;
  ++I.global_step;
  r.global_step = I.global_step;
  r.timings.start = ctx.start;
  r.timings.data_s = ctx.data_s;
  r.timings.forward_s = tf - t1;
  r.timings.backward_s = t2 - tf;
  r.timings.comm_s = (t1 - td) + (t3 - t2);
  r.timings.guard_s = t1 - td;
  r.timings.optimizer_s = t4 - t3;
  if (!I.phase_events.empty()) {
    // The device's times: waits for the step's last kernels (the optimizer's), which the next
    // step's work would queue behind anyway.
    // Best effort: the step is done (and counted); a failure to read the clock keeps the host
    // times, and a failed device reports itself at the next step's work.
    try {
      mark(4);
      const auto& e = I.phase_events;
      e[4]->synchronize();
      StepTimings t = r.timings;
      t.forward_s = cuda::elapsed_seconds(*e[0], *e[1]);
      t.backward_s = cuda::elapsed_seconds(*e[1], *e[2]);
      t.comm_s = t.guard_s + cuda::elapsed_seconds(*e[2], *e[3]);
      t.optimizer_s = cuda::elapsed_seconds(*e[3], *e[4]);
      r.timings = t;
    } catch (const Error& err) {
      if (!I.warned_gpu_clock) log::warn(I.o.name, ": step times from the host (the GPU's clock: ", err.what(), ")");
      I.warned_gpu_clock = true;
    }
  }
  return r;
}

std::map<std::string, double> Trainer::validate(int64_t epoch, double* val_loss, int64_t* val_samples) {
  auto& I = *impl_;
  HALO_CHECK_T(ConfigError, I.val != nullptr && I.metric != nullptr, I.o.name,
               ": validate() needs a validation loader and a ValidationMetric");
  I.sync_buffers();
  I.model.eval();
  if (I.graphs) I.graphs->other_work();  // other shapes' plans: the next capture warms up again
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
      Tensor pred = for_metrics(I.model.forward(I.prepare_input(b->x)));
      dist::MetricReducer discarded;
      I.metric->add(pred, I.prepare_target(b->y), discarded);
      for (const auto& kv : discarded.local()) sums.add(kv.first, 0, 0);
      sums.add("loss", 0, 0);
      continue;
    }
    const bool whole = b->real == b->size;
    Tensor pred = for_metrics(I.model.forward(I.prepare_input(whole ? b->x : b->x.slice(0, b->real))));
    Tensor y = I.prepare_target(whole ? b->y : b->y.slice(0, b->real));
    const double l = I.loss.forward(pred, y);
    sums.add("loss", l * double(b->real), double(b->real));
    I.metric->add(pred, y, sums);
    counted += double(b->real);
  }
  I.model.train();
  sums.add("__samples", counted, 1);  // a name no metric uses
  auto totals = sums.reduce_totals(I.data);  // spatial groups: one prediction per replica
  const auto& lt = totals.at("loss");
  if (val_loss) *val_loss = lt.count > 0 ? lt.sum / lt.count : 0.0;
  if (val_samples) *val_samples = int64_t(totals.at("__samples").sum);
  totals.erase("loss");
  totals.erase("__samples");
  return I.metric->finish(totals);
}

}  // namespace halo::train
