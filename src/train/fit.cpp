// Trainer::fit(): epochs of step() over the training loader, with validation, checkpoints,
// resume, the target stop and stop signals. Progress, metrics file, MLPerf log and epoch
// summary are callbacks (callbacks.cpp).
#include <csignal>

#include "halo/dist/metrics.hpp"
#include "halo/train/device_batches.hpp"
#include "halo/train/stop_signal.hpp"
#include "halo/util/log.hpp"
#include "halo/util/timer.hpp"
#include "train/callbacks.hpp"
#include "train/trainer_impl.hpp"

namespace halo::train {

namespace {

// The epoch's numbers reduced over ranks.
EpochRecord reduce_epoch(const dist::Communicator& comm, int epoch, int64_t global_step, double lr, double loss_sum,
                         double loss_count, const TimeAccumulator& times, double samples_local, double train_s) {
  EpochRecord r;
  r.epoch = epoch + 1;
  r.global_step = global_step;
  r.lr = lr;
  dist::MetricReducer red;
  red.add("loss", loss_sum, loss_count);
  red.add("compute", times.get("compute"), 1);
  red.add("comm", times.get("comm"), 1);
  red.add("data", times.get("data"), 1);
  red.add("samples_run", samples_local, 1);
  auto tot = red.reduce_totals(comm);
  const double ranks = comm.size();
  r.train_loss = tot["loss"].count > 0 ? tot["loss"].sum / tot["loss"].count : 0;
  r.train_samples = int64_t(tot["loss"].count);
  r.train_seconds = train_s;
  r.samples_per_s = train_s > 0 ? tot["samples_run"].sum / train_s : 0;
  // Averages over ranks: a rank that waits much longer than the rest shows in the max,
  // but the mean is what the epoch's time went to.
  r.compute_seconds = tot["compute"].sum / ranks;
  r.comm_seconds = tot["comm"].sum / ranks;
  r.data_seconds = tot["data"].sum / ranks;
  r.data_wait_pct = train_s > 0 ? 100.0 * r.data_seconds / train_s : 0;
  return r;
}

const char* signal_name(int sig) { return sig == SIGTERM ? "SIGTERM" : sig == SIGUSR1 ? "SIGUSR1" : "a stop request"; }

// Signals summed over ranks ([0] SIGTERM, [1] SIGUSR1, [2] another request) -> the one acted on.
int agreed_signal(const int64_t* seen) { return seen[0] ? SIGTERM : seen[1] ? SIGUSR1 : seen[2] ? -1 : 0; }

}  // namespace

FitResult Trainer::fit() {
  auto& I = *impl_;
  HALO_CHECK_T(ConfigError, I.train != nullptr, I.o.name, ": fit() needs a training loader (this trainer was built for step())");
  data::DataLoader& loader = *I.train;
  const int64_t spe = loader.batches_per_epoch();
  std::vector<std::shared_ptr<Callback>> callbacks;
  for (auto& c : builtin_callbacks(I.o, I.rank0(), I.resumed)) callbacks.push_back(std::move(c));
  callbacks.insert(callbacks.end(), I.callbacks.begin(), I.callbacks.end());
  auto each = [&](auto&& call) {
    for (auto& c : callbacks) call(*c);
  };
  FitState st;
  st.name = I.o.name;
  st.rank0 = I.rank0();
  st.ranks = I.comm.size();
  st.resumed = I.resumed;
  st.epochs = I.o.epochs;
  st.steps_per_epoch = spe;
  st.validates = I.val && I.o.validate_every > 0;
  st.last_val_seconds = I.last_val_seconds;
  FitResult result;
  Stopwatch run_sw;
  double last_checkpoint = now_seconds();
  bool saved_now = false;  // the state in the checkpoint file is the current one
  const bool watch_signals = stop_signal_handlers_installed();
  const bool timed = I.o.checkpoint_every_minutes > 0 && !I.o.checkpoint_path.empty();
  I.skipped_logged = 0;

  auto log_line = [&](const std::string& s) {
    each([](Callback& c) { c.on_log_line(); });
    log::info(s);
  };
  auto finish = [&](FitResult& r) -> FitResult& {
    r.epochs_done = I.epochs_done;
    r.global_step = I.global_step;
    r.seconds = run_sw.seconds();
    return r;
  };
  // The end of a run stopped by a signal (stop_signal.hpp), its checkpoint already written.
  auto stopped_by = [&](int sig, const std::string& where) {
    log_line(str(I.o.name, ": stopped by ", signal_name(sig), " ", where, " (", I.global_step, " steps done)",
                 I.o.checkpoint_path.empty() ? std::string("; no checkpoint.path, nothing saved")
                                             : "; resume from '" + I.o.checkpoint_path + "' with --resume"));
    clear_stop_request();
    result.interrupted = true;
    result.stop_signal = sig;
    return finish(result);
  };
  auto stopped_after_steps = [&](const std::string& where) {
    log_line(str(I.o.name, ": stopped after ", I.global_step, " steps (stop_after_steps) ", where));
    result.interrupted = true;
    return finish(result);
  };

  each([&](Callback& c) { c.on_fit_start(st); });
  I.model.train();
  for (int epoch = I.epochs_done; epoch < I.o.epochs; ++epoch) {
    st.epoch = epoch;
    each([&](Callback& c) { c.on_epoch_start(st); });
    loader.start_epoch(epoch);
    // A resumed run skips the batches its checkpoint had already trained on: the epoch's
    // order is a function of (seed, epoch), so the rest comes out as it would have.
    for (int64_t s = 0; s < I.step_in_epoch; ++s)
      HALO_CHECK_T(IOError, loader.next() != nullptr, I.o.name, ": checkpoint position (step ", I.step_in_epoch,
                   " of epoch ", epoch + 1, ") is beyond the epoch's ", spe, " batches");
    double loss_sum = 0, loss_count = 0;
    if (I.step_in_epoch > 0 && (I.rank0() || I.resumed_loss_per_rank)) {
      loss_sum = I.resumed_loss_sum;
      loss_count = I.resumed_loss_count;
    }
    if (I.step_in_epoch == 0) I.epoch_skipped_steps = I.epoch_skipped_samples = 0;  // else: from the checkpoint
    TimeAccumulator times;
    double epoch_samples_local = 0, running_loss = 0;
    int64_t running_n = 0;
    Stopwatch epoch_sw;
    I.nonfinite_pending = false;

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
        ctx.dataset = &loader.dataset();
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
      const StepResult r = run_step(x, y, batch_size, ctx);
      times.add("compute", r.timings.compute_s());
      times.add("comm", r.timings.comm_s);
      // A non-finite loss (on any rank: all leave it out alike) would make the epoch's
      // mean NaN; the skipped steps are counted instead.
      if (r.loss_finite) {
        loss_sum += r.loss * double(batch_size);
        loss_count += double(batch_size);
        running_loss += r.loss;
        ++running_n;
      }
      epoch_samples_local += double(batch_size);
      ++st.steps_run;
      saved_now = false;
      st.step_in_epoch = I.step_in_epoch;
      st.global_step = I.global_step;
      st.running_loss = running_n > 0 ? running_loss / double(running_n) : 0.0;
      st.epoch_seconds = epoch_sw.seconds();
      st.epoch_samples = epoch_samples_local;
      st.epoch_data_seconds = times.get("data");
      st.epoch_skipped_steps = I.epoch_skipped_steps;
      st.epoch_skipped_samples = I.epoch_skipped_samples;
      st.run_seconds = run_sw.seconds();
      each([&](Callback& c) { c.on_step_end(st, r); });

      // A stop signal or a due timed checkpoint (agreed on in the step's flags). At the
      // epoch's last step the epoch is finished first (validation, its checkpoint): a stop
      // request is then acted on at the next epoch's first step.
      const bool mid_epoch = I.step_in_epoch < spe;
      if (const int sig = agreed_signal(ctx.flags + 3); sig != 0 && mid_epoch) {
        I.save(*this, loss_sum, loss_count);
        return stopped_by(sig, str("at epoch ", epoch + 1, " step ", I.step_in_epoch, "/", spe));
      }
      if (ctx.flags[2] > 0 && mid_epoch) {
        I.save(*this, loss_sum, loss_count);
        last_checkpoint = now_seconds();
        saved_now = true;
      }
      if (I.o.stop_after_steps >= 0 && I.global_step >= I.o.stop_after_steps && mid_epoch) {
        I.save(*this, loss_sum, loss_count);
        return stopped_after_steps(str("at epoch ", epoch + 1, " step ", I.step_in_epoch, "/", spe,
                                       I.o.checkpoint_path.empty() ? std::string()
                                                                   : "; resume from '" + I.o.checkpoint_path + "'"));
      }
    }
    const double train_s = epoch_sw.seconds();
    st.train_seconds += train_s;
    each([&](Callback& c) { c.on_train_epoch_end(st); });

    // The epoch is complete: reduce its numbers over ranks.
    EpochRecord r = reduce_epoch(I.comm, epoch, I.global_step, I.opt.lr(), loss_sum, loss_count, times,
                                 epoch_samples_local, train_s);
    r.skipped_steps = I.epoch_skipped_steps;
    r.skipped_samples = I.epoch_skipped_samples;
    I.epochs_done = epoch + 1;
    I.step_in_epoch = 0;

    const bool last = I.epochs_done == I.o.epochs;
    if (st.validates && (I.epochs_done % I.o.validate_every == 0 || last)) {
      Stopwatch vsw;
      each([&](Callback& c) { c.on_validation_start(st); });
      r.val_metrics = validate(epoch, &r.val_loss, &r.val_samples);
      each([&](Callback& c) { c.on_validation_end(st, r.val_metrics); });
      r.validated = true;
      r.val_skipped_samples = I.val->epoch_stats().skipped_samples;
      I.comm.allreduce_sum(&r.val_skipped_samples, 1, "validation bad samples");
      r.val_seconds = vsw.seconds();
      I.last_val_seconds = st.last_val_seconds = r.val_seconds;
      result.last_val_metrics = r.val_metrics;
    }
    st.run_seconds = run_sw.seconds();
    each([&](Callback& c) { c.on_epoch_end(st, r); });
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
      if (const int sig = agreed_signal(seen)) {
        if (!saved_now) I.save(*this, 0, 0);
        return stopped_by(sig, str("at the end of epoch ", r.epoch));
      }
    }
    if (!reached && !last && I.o.stop_after_steps >= 0 && I.global_step >= I.o.stop_after_steps) {
      if (!saved_now) I.save(*this, 0, 0);
      return stopped_after_steps(str("at the end of epoch ", r.epoch));
    }
    if (reached) {
      result.target_reached = true;
      log_line(str(I.o.name, ": target ", I.o.target_metric, " ", I.o.target_lower_is_better ? "<= " : ">= ",
                   I.o.target_value, " reached after epoch ", r.epoch));
      break;
    }
  }
  if (I.o.checkpoint_at_end && !saved_now) I.save(*this, 0, 0);
  finish(result);
  each([&](Callback& c) { c.on_fit_end(st, result); });
  log::info(fit_done_line(I.o, result, result.seconds, I.o.checkpoint_at_end || saved_now));
  if (I.guard && I.guard->checks() > 0)
    log::debug(I.o.name, ": step guard: ", I.guard->checks(), " checks, ",
               1e6 * I.guard->seconds() / double(I.guard->checks()), " us each on average (waits included)");
  return result;
}

}  // namespace halo::train
