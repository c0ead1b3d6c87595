// Trainer::fit(): epochs of step() over the training loader, with validation, checkpoints,
// resume, the target stop and stop signals. Progress, metrics file, MLPerf log and epoch
// summary are callbacks (callbacks.cpp); what changes the run's course stays here, decided
// by every rank alike from reduced values.
#include <csignal>

#include "halo/dist/metrics.hpp"
#include "halo/train/device_batches.hpp"
#include "halo/train/stop_signal.hpp"
#include "halo/train/trace.hpp"
#include "halo/util/log.hpp"
#include "halo/util/timer.hpp"
#include "train/callbacks.hpp"
#include "train/trainer_impl.hpp"

namespace halo::train {

namespace {

const char* signal_name(int sig) { return sig == SIGTERM ? "SIGTERM" : sig == SIGUSR1 ? "SIGUSR1" : "a stop request"; }

// Signals summed over ranks ([0] SIGTERM, [1] SIGUSR1, [2] another request) -> the one acted on.
int agreed_signal(const int64_t* seen) { return seen[0] ? SIGTERM : seen[1] ? SIGUSR1 : seen[2] ? -1 : 0; }

}  // namespace

struct Trainer::FitLoop {
  Trainer& trainer;
  Impl& I;
  data::DataLoader& loader;
  const int64_t spe;
  std::vector<std::shared_ptr<Callback>> callbacks;
  FitState st;
  FitResult result;
  Stopwatch run_sw;
  double last_checkpoint = now_seconds();
  bool saved_now = false;  // the state in the checkpoint file is the current one
  const bool watch_signals = stop_signal_handlers_installed();
  const bool timed = I.o.checkpoint_every_minutes > 0 && !I.o.checkpoint_path.empty();
  // The running epoch's sums (this rank's).
  double loss_sum = 0, loss_count = 0, samples = 0, running_loss = 0;
  int64_t running_n = 0;
  TimeAccumulator times;

  FitLoop(Trainer& t, Impl& impl) : trainer(t), I(impl), loader(*impl.train), spe(loader.batches_per_epoch()) {
    for (auto& c : builtin_callbacks(I.o, I.rank0(), I.resumed)) callbacks.push_back(std::move(c));
    if (!I.o.trace_file.empty())
      callbacks.push_back(std::make_shared<TraceCallback>(I.o.trace_file, I.comm, I.model, I.sync.get()));
    callbacks.insert(callbacks.end(), I.callbacks.begin(), I.callbacks.end());
    st.name = I.o.name;
    st.rank = I.comm.rank();
    st.rank0 = I.rank0();
    st.ranks = I.comm.size();
    st.replicas = I.data.size();
    st.resumed = I.resumed;
    st.epochs = I.o.epochs;
    st.steps_per_epoch = spe;
    st.validates = I.val && I.o.validate_every > 0;
    st.last_val_seconds = I.last_val_seconds;
    I.skipped_logged = 0;
  }

  template <class Call>
  void each(Call&& call) {
    for (auto& c : callbacks) call(*c);
  }
  void log_line(const std::string& s) {
    each([](Callback& c) { c.on_log_line(); });
    log::info(s);
  }
  FitResult& finish() {
    result.epochs_done = I.epochs_done;
    result.global_step = I.global_step;
    result.seconds = run_sw.seconds();
    return result;
  }
  // Every checkpoint fit() writes goes through here, so callbacks (the trace) see it.
  void save(double epoch_loss_sum, double epoch_loss_count) {
    const double t0 = now_seconds();
    I.save(trainer, epoch_loss_sum, epoch_loss_count);
    const double t1 = now_seconds();
    each([&](Callback& c) { c.on_checkpoint(st, t0, t1); });
  }
  void checkpoint(double epoch_loss_sum, double epoch_loss_count) {
    save(epoch_loss_sum, epoch_loss_count);
    last_checkpoint = now_seconds();
    saved_now = true;
  }
  // The end of a run stopped by a signal (stop_signal.hpp), its checkpoint already written.
  FitResult& stopped_by(int sig, const std::string& where) {
    log_line(str(I.o.name, ": stopped by ", signal_name(sig), " ", where, " (", I.global_step, " steps done)",
                 I.o.checkpoint_path.empty() ? std::string("; no checkpoint.path, nothing saved")
                                             : "; resume from '" + I.o.checkpoint_path + "' with --resume"));
    clear_stop_request();
    result.interrupted = true;
    result.stop_signal = sig;
    return finish();
  }
  FitResult& stopped_after_steps(const std::string& where) {
    log_line(str(I.o.name, ": stopped after ", I.global_step, " steps (stop_after_steps) ", where));
    result.interrupted = true;
    return finish();
  }

  // Starts the epoch: the loader at the checkpoint's position, the sums a resume carries over.
  void start_epoch(int epoch) {
    st.epoch = epoch;
    each([&](Callback& c) { c.on_epoch_start(st); });
    loader.start_epoch(epoch);
    // A resumed run skips the batches its checkpoint had already trained on: the epoch's
    // order is a function of (seed, epoch), so the rest comes out as it would have.
    for (int64_t s = 0; s < I.step_in_epoch; ++s)
      HALO_CHECK_T(IOError, loader.next() != nullptr, I.o.name, ": checkpoint position (step ", I.step_in_epoch,
                   " of epoch ", epoch + 1, ") is beyond the epoch's ", spe, " batches");
    loss_sum = loss_count = 0;
    if (I.step_in_epoch > 0 && (I.rank0() || I.resumed_loss_per_rank)) {
      loss_sum = I.resumed_loss_sum;
      loss_count = I.resumed_loss_count;
    }
    if (I.step_in_epoch == 0) I.epoch_skipped_steps = I.epoch_skipped_samples = 0;  // else: from the checkpoint
    times = TimeAccumulator();
    samples = running_loss = 0;
    running_n = 0;
    I.nonfinite_pending = false;
  }

  // Runs the epoch's steps. Returns false when a signal or stop_after_steps ended the run
  // in the middle of the epoch (its checkpoint written).
  bool train_epoch(int epoch) {
    Stopwatch epoch_sw;
    // On a GPU the next batch is copied to the device while the current step runs.
    std::unique_ptr<DeviceBatchQueue> on_device;
    if (I.o.device.is_cuda()) on_device = std::make_unique<DeviceBatchQueue>(loader, I.o.device);
    // Device batches do not carry the loader's Batch: their bad-sample counts are taken from
    // the loader's running total instead (which runs up to one prefetched batch ahead).
    int64_t loader_skipped_seen = loader.epoch_stats().skipped_samples;
    for (;;) {
      StepContext ctx;
      ctx.start = now_seconds();
      ctx.epoch = epoch;
      ctx.steps_per_epoch = spe;
      Tensor x, y;
      int64_t batch_size = 0;
      if (on_device) {
        ctx.untracked = "not tracked on the GPU path";
        if (const DeviceBatch* db = on_device->next()) {
          x = I.prepare_input(db->x);  // already in the loader's layout: no work unless it differs
          y = db->y;
          batch_size = db->size;
        }
      } else if (const data::Batch* hb = loader.next()) {
        ctx.batch = hb;
        ctx.dataset = hb->source;
        x = I.prepare_input(hb->x);
        y = I.prepare_target(hb->y);
        batch_size = hb->size;
      }
      ctx.data_s = now_seconds() - ctx.start;
      times.add("data", ctx.data_s);
      if (batch_size == 0) {
        // The epoch's end is checked like a step, so a rank still holding a batch is named.
        const double t = now_seconds();
        if (I.guard)
          I.guard->check({epoch, I.step_in_epoch, spe, false, I.grad_buckets, I.grad_elements, I.grad_layout});
        times.add("comm", now_seconds() - t);
        break;
      }
      ctx.fill_flags = [&](int64_t* flags) {
        const int sig = watch_signals ? stop_requested() : 0;
        if (ctx.batch) {
          flags[1] = ctx.batch->skipped;
        } else {
          const int64_t total = loader.epoch_stats().skipped_samples;
          flags[1] = total - loader_skipped_seen;
          loader_skipped_seen = total;
        }
        flags[2] = timed && I.rank0() && now_seconds() - last_checkpoint >= 60.0 * I.o.checkpoint_every_minutes;
        flags[3] = sig == SIGTERM;
        flags[4] = sig == SIGUSR1;
        flags[5] = sig != 0 && sig != SIGTERM && sig != SIGUSR1;
      };
      const StepResult r = trainer.run_step(x, y, batch_size, ctx);
      account(r, epoch_sw.seconds());
      each([&](Callback& c) { c.on_step_end(st, r); });

      // A stop signal or a due timed checkpoint (agreed on in the step's flags). At the
      // epoch's last step the epoch is finished first (validation, its checkpoint): a stop
      // request is then acted on at the next epoch's first step.
      if (I.step_in_epoch == spe) continue;
      if (const int sig = agreed_signal(ctx.flags + 3)) {
        save(loss_sum, loss_count);
        stopped_by(sig, str("at epoch ", epoch + 1, " step ", I.step_in_epoch, "/", spe));
        return false;
      }
      if (ctx.flags[2] > 0) checkpoint(loss_sum, loss_count);
      if (I.o.stop_after_steps >= 0 && I.global_step >= I.o.stop_after_steps) {
        save(loss_sum, loss_count);
        stopped_after_steps(str("at epoch ", epoch + 1, " step ", I.step_in_epoch, "/", spe,
                                I.o.checkpoint_path.empty() ? std::string()
                                                            : "; resume from '" + I.o.checkpoint_path + "'"));
        return false;
      }
    }
    const double train_s = epoch_sw.seconds();
    st.train_seconds += train_s;
    st.epoch_seconds = train_s;
    each([&](Callback& c) { c.on_train_epoch_end(st); });
    return true;
  }

  // A step's numbers into the epoch's sums and the state callbacks see.
  void account(const StepResult& r, double epoch_seconds) {
    times.add("compute", r.timings.compute_s());
    times.add("comm", r.timings.comm_s);
    // A non-finite loss (on any rank: all leave it out alike) would make the epoch's mean
    // NaN; the skipped steps are counted instead.
    if (r.loss_finite) {
      loss_sum += r.loss * double(r.batch_size);
      loss_count += double(r.batch_size);
      running_loss += r.loss;
      ++running_n;
    }
    samples += double(r.batch_size);
    saved_now = false;
    ++st.steps_run;
    st.step_in_epoch = I.step_in_epoch;
    st.global_step = I.global_step;
    st.running_loss = running_n > 0 ? running_loss / double(running_n) : 0.0;
    st.epoch_seconds = epoch_seconds;
    st.epoch_samples = samples;
    st.epoch_data_seconds = times.get("data");
    st.epoch_skipped_steps = I.epoch_skipped_steps;
    st.epoch_skipped_samples = I.epoch_skipped_samples;
    st.run_seconds = run_sw.seconds();
  }

  // The completed epoch's numbers reduced over ranks, validated when due.
  EpochRecord finish_epoch(int epoch) {
    EpochRecord r;
    r.epoch = epoch + 1;
    r.global_step = I.global_step;
    r.lr = I.opt.lr();
    dist::MetricReducer red;
    red.add("loss", loss_sum, loss_count);
    red.add("compute", times.get("compute"), 1);
    red.add("comm", times.get("comm"), 1);
    red.add("data", times.get("data"), 1);
    red.add("samples_run", samples, 1);
    auto tot = red.reduce_totals(I.data);  // spatial groups: count each replica's samples once
    const double ranks = I.data.size(), train_s = st.epoch_seconds;
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

    if (st.validates && (I.epochs_done % I.o.validate_every == 0 || I.epochs_done == I.o.epochs)) {
      Stopwatch vsw;
      each([&](Callback& c) { c.on_validation_start(st); });
      r.val_metrics = trainer.validate(epoch, &r.val_loss, &r.val_samples);
      each([&](Callback& c) { c.on_validation_end(st, r.val_metrics); });
      r.validated = true;
      r.val_skipped_samples = I.val->epoch_stats().skipped_samples;
      I.data.allreduce_sum(&r.val_skipped_samples, 1, "validation bad samples");
      r.val_seconds = vsw.seconds();
      I.last_val_seconds = st.last_val_seconds = r.val_seconds;
      result.last_val_metrics = r.val_metrics;
    }
    st.run_seconds = run_sw.seconds();
    each([&](Callback& c) { c.on_epoch_end(st, r); });
    result.epochs.push_back(r);
    return r;
  }

  // The validation metric reached the target (the value was reduced over ranks, so every
  // rank takes the same decision). Under spatial parallelism each position of the grid
  // reduced over its own replicas: rank 0's decision is taken by all, so that a last-bit
  // difference between positions cannot stop some ranks and not others.
  bool target_reached(const EpochRecord& r) const {
    if (!r.validated || I.o.target_metric.empty()) return false;
    auto it = r.val_metrics.find(I.o.target_metric);
    HALO_CHECK_T(ConfigError, it != r.val_metrics.end(), I.o.name, ": target metric '", I.o.target_metric,
                 "' is not among the validation metrics");
    const bool mine = I.o.target_lower_is_better ? it->second <= I.o.target_value : it->second >= I.o.target_value;
    if (I.data.size() == I.comm.size()) return mine;
    int64_t rank0 = I.rank0() && mine ? 1 : 0;
    I.comm.allreduce_sum(&rank0, 1, "target reached");
    return rank0 > 0;
  }

  // A signal that came during the epoch's last step or its validation is acted on at the
  // epoch's end, not after the next epoch's first step (with one step per epoch it would
  // never be): one more small allreduce per epoch, so every rank agrees.
  int signal_at_epoch_end() {
    if (!watch_signals) return 0;
    const int mine = stop_requested();
    int64_t seen[3] = {mine == SIGTERM, mine == SIGUSR1, mine != 0 && mine != SIGTERM && mine != SIGUSR1};
    I.comm.allreduce_sum(seen, 3, "stop signal at the end of the epoch");
    return agreed_signal(seen);
  }
};

FitResult Trainer::fit() {
  auto& I = *impl_;
  HALO_CHECK_T(ConfigError, I.train != nullptr, I.o.name, ": fit() needs a training loader (this trainer was built for step())");
  FitLoop loop(*this, I);
  loop.each([&](Callback& c) { c.on_fit_start(loop.st); });
  I.model.train();
  for (int epoch = I.epochs_done; epoch < I.o.epochs; ++epoch) {
    loop.start_epoch(epoch);
    if (!loop.train_epoch(epoch)) return loop.result;
    const EpochRecord r = loop.finish_epoch(epoch);
    const bool reached = loop.target_reached(r), last = I.epochs_done == I.o.epochs;
    if (I.o.checkpoint_every_epochs > 0 && I.epochs_done % I.o.checkpoint_every_epochs == 0 && !last && !reached)
      loop.checkpoint(0, 0);
    if (reached) {
      loop.result.target_reached = true;
      loop.log_line(str(I.o.name, ": target ", I.o.target_metric, " ", I.o.target_lower_is_better ? "<= " : ">= ",
                        I.o.target_value, " reached after epoch ", r.epoch));
      break;
    }
    if (last) break;
    if (const int sig = loop.signal_at_epoch_end()) {
      if (!loop.saved_now) loop.save(0, 0);
      return loop.stopped_by(sig, str("at the end of epoch ", r.epoch));
    }
    if (I.o.stop_after_steps >= 0 && I.global_step >= I.o.stop_after_steps) {
      if (!loop.saved_now) loop.save(0, 0);
      return loop.stopped_after_steps(str("at the end of epoch ", r.epoch));
    }
  }
  if (I.o.checkpoint_at_end && !loop.saved_now) loop.save(0, 0);
  FitResult& result = loop.finish();
  loop.each([&](Callback& c) { c.on_fit_end(loop.st, result); });
  log::info(fit_done_line(I.o, result, result.seconds, I.o.checkpoint_at_end || loop.saved_now));
  if (I.guard && I.guard->checks() > 0)
    log::debug(I.o.name, ": step guard: ", I.guard->checks(), " checks, ",
               1e6 * I.guard->seconds() / double(I.guard->checks()), " us each on average (waits included)");
  return result;
}

}  // namespace halo::train
