#include "train/callbacks.hpp"

#include <cstdio>

#include "halo/train/metrics_log.hpp"
#include "halo/train/progress.hpp"
#include "halo/util/log.hpp"

namespace halo::train {

namespace {

// The rank-0 line: epoch, step, running loss, global samples/s, data wait, ETA.
class ProgressCallback : public Callback {
 public:
  ProgressCallback(const TrainerOptions& o, bool rank0) : line_(rank0 && o.progress, nullptr, o.progress_interval_s), on_(rank0 && o.progress) {
    if (o.progress_style == "plain" || o.progress_style == "terminal")
      line_.set_terminal(o.progress_style == "terminal");
    else
      HALO_CHECK_T(ConfigError, o.progress_style == "auto", o.name,
                   ": progress style must be auto, terminal or plain (got '", o.progress_style, "')");
  }
  void on_step_end(const FitState& s, const StepResult&) override {
    if (!on_) return;
    ProgressState ps;
    ps.epoch = s.epoch + 1;
    ps.epochs = s.epochs;
    ps.step = s.step_in_epoch;
    ps.steps_per_epoch = s.steps_per_epoch;
    ps.loss = s.running_loss;
    ps.skipped_steps = s.epoch_skipped_steps;
    ps.skipped_samples = s.epoch_skipped_samples;
    // The other ranks' batches are as large as this one's up to one sample.
    ps.samples_per_s = s.epoch_seconds > 0 ? s.epoch_samples * s.replicas / s.epoch_seconds : 0;
    ps.data_wait_pct = s.epoch_seconds > 0 ? 100.0 * s.epoch_data_seconds / s.epoch_seconds : 0;
    const double per_step = (s.train_seconds + s.epoch_seconds) / double(s.steps_run);
    const int64_t steps_left = int64_t(s.epochs - s.epoch) * s.steps_per_epoch - s.step_in_epoch;
    const int vals_left = s.validates ? (s.epochs - s.epoch) : 0;
    ps.eta_s = per_step * double(steps_left) + s.last_val_seconds * vals_left;
    line_.update(ps);
  }
  void on_log_line() override { line_.finish_line(); }
  void on_fit_end(const FitState&, const FitResult&) override { line_.finish_line(); }

 private:
  ProgressLine line_;
  bool on_;
};

// One JSON object per epoch (rank 0), appended on resume.
class MetricsFileCallback : public Callback {
 public:
  MetricsFileCallback(const std::string& path, bool rank0, bool append) : log_(path, rank0, append), rank0_(rank0) {}
  void on_epoch_end(const FitState& s, const EpochRecord& r) override {
    if (!rank0_) return;
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
                   {"elapsed_seconds", s.run_seconds}};
    if (r.validated) {
      m["val_loss"] = r.val_loss;
      m["val_samples"] = r.val_samples;
      m["val_seconds"] = r.val_seconds;
      m["val_skipped_samples"] = r.val_skipped_samples;
      for (const auto& [k, v] : r.val_metrics) m["val_" + k] = v;
    }
    log_.write(m);
  }

 private:
  MetricsLog log_;
  bool rank0_;
};

// epoch_start/epoch_stop and eval_start/eval_stop in the MLPerf log.
class MLLogCallback : public Callback {
 public:
  explicit MLLogCallback(MLLogger* log) : log_(log) {}
  void on_epoch_start(const FitState& s) override { log_->epoch_start(s.epoch + 1); }
  void on_train_epoch_end(const FitState& s) override { log_->epoch_stop(s.epoch + 1); }
  void on_validation_start(const FitState& s) override { log_->eval_start(s.epoch + 1); }
  void on_validation_end(const FitState& s, const std::map<std::string, double>& m) override {
    log_->eval_stop(s.epoch + 1, m);
  }

 private:
  MLLogger* log_;
};

// "train: epoch 2/3  train loss 0.41  val loss 0.40 ... lr 0.001" (every rank logs; the
// logger keeps rank 0's).
class EpochSummaryCallback : public Callback {
 public:
  EpochSummaryCallback(std::string name, int epochs, Callback* progress)
      : name_(std::move(name)), epochs_(epochs), progress_(progress) {}
  void on_epoch_end(const FitState&, const EpochRecord& r) override {
    std::string s = str(name_, ": epoch ", r.epoch, "/", epochs_, "  train loss ", r.train_loss);
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
    progress_->on_log_line();
    log::info(s + buf);
  }

 private:
  std::string name_;
  int epochs_;
  Callback* progress_;
};

}  // namespace

std::vector<std::unique_ptr<Callback>> builtin_callbacks(const TrainerOptions& o, bool rank0, bool resumed) {
  std::vector<std::unique_ptr<Callback>> out;
  auto progress = std::make_unique<ProgressCallback>(o, rank0);
  Callback* line = progress.get();
  out.push_back(std::move(progress));
  if (o.mllog) out.push_back(std::make_unique<MLLogCallback>(o.mllog));
  out.push_back(std::make_unique<MetricsFileCallback>(o.metrics_file, rank0, resumed));
  if (o.epoch_summary) out.push_back(std::make_unique<EpochSummaryCallback>(o.name, o.epochs, line));
  return out;
}

std::string fit_done_line(const TrainerOptions& o, const FitResult& r, double seconds, bool checkpoint_written) {
  double samples = 0, train_seconds = 0;
  for (const auto& e : r.epochs) {
    samples += double(e.train_samples);
    train_seconds += e.train_seconds;
  }
  std::string s = str(o.name, ": done: ", r.epochs_done, " epochs, ", r.global_step, " steps in ",
                      ProgressLine::format_duration(seconds));
  if (train_seconds > 0) s += str(", ", int64_t(samples / train_seconds), " samples/s");
  for (const auto& [k, v] : r.last_val_metrics) s += str(", val ", k, " ", v);
  if (!o.target_metric.empty())
    s += r.target_reached ? str(", target ", o.target_metric, " reached") : str(", target ", o.target_metric, " not reached");
  if (!o.checkpoint_path.empty() && checkpoint_written) s += str(", checkpoint '", o.checkpoint_path, "'");
  return s;
}

}  // namespace halo::train
