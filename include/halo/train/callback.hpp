// What a training step reports, and the callbacks Trainer::fit() calls around its steps.
//
// fit() itself only loops over epochs and batches; the rank-0 progress line, the JSON-lines
// metrics file, the MLPerf log and the epoch summary are callbacks built from
// TrainerOptions, and a program adds its own with Trainer::add_callback. Every rank calls
// every hook at the same point of the run; callbacks that write files check FitState::rank0.
// Hooks should not make collectives: the one exception is the trace (train/trace.hpp), which
// gathers its events in on_fit_start, on_epoch_end, on_checkpoint and on_fit_end, reached by
// every rank together.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace halo::train {

/// Wall time of the phases of one step, in seconds. They follow each other in this order:
/// data wait, step guard, forward, backward, gradient wait (comm_s - guard_s), optimizer.
/// On a GPU the phases after the guard are the device's times between their boundaries
/// (CUDA events on the compute stream): the host only queues the kernels, so its own clock
/// would put backward's GPU time into the gradient wait. In a CUDA-graph step
/// (TrainerOptions::cuda_graph) forward_s holds the whole replay and backward_s is 0.
struct StepTimings {
  double start = 0;        ///< now_seconds() when the step (with its data wait) began
  double data_s = 0;       ///< waiting for the batch (fit(): the loader; step(): 0)
  double forward_s = 0;    ///< zero_grad, forward and loss
  double backward_s = 0;   ///< backward (gradient allreduces start inside it)
  double comm_s = 0;       ///< step-guard check and waiting for the averaged gradients
  double guard_s = 0;      ///< the step-guard part of comm_s (it runs before forward)
  double optimizer_s = 0;  ///< agreement on the step's flags, unscale, clipping, update
  double compute_s() const { return forward_s + backward_s + optimizer_s; }
};

/// One synchronised optimizer step (Trainer::step). Every rank gets the same values except
/// `loss` and the timings.
struct StepResult {
  double loss = 0;           ///< this rank's loss on its batch
  bool loss_finite = true;   ///< finite on every rank (else left out of loss means)
  bool updated = false;      ///< the optimizer stepped
  bool skipped = false;      ///< no update for a non-finite loss or gradient (NonFinitePolicy::skip)
  bool overflow = false;     ///< loss scaling: gradients overflowed, the scale backs off
  bool graph_replay = false; ///< the compute was a CUDA graph's replay (TrainerOptions::cuda_graph)
  int64_t batch_size = 0;    ///< this rank's rows
  int64_t global_step = 0;   ///< steps taken in total, this one included
  StepTimings timings;
};

/// Per-epoch numbers (global over ranks), as written to the metrics file.
struct EpochRecord {
  int epoch = 0;  ///< 1-based
  int64_t global_step = 0;
  double lr = 0;
  double train_loss = 0;        ///< mean over the steps' finite losses
  int64_t train_samples = 0;    ///< global, samples trained on (padding repeats included)
  int64_t skipped_steps = 0;    ///< optimizer steps skipped for a non-finite loss or gradient
  int64_t skipped_samples = 0;  ///< bad training samples replaced by the loaders (global)
  int64_t val_skipped_samples = 0;  ///< the same for validation (when validated)
  double train_seconds = 0;     ///< wall time of the training part of the epoch
  double samples_per_s = 0;     ///< global training throughput
  double compute_seconds = 0;   ///< forward, loss, backward, optimizer (mean over ranks)
  double comm_seconds = 0;      ///< blocked waiting for gradient allreduces (mean over ranks)
  double data_seconds = 0;      ///< blocked waiting for the loader (mean over ranks)
  double data_wait_pct = 0;
  bool validated = false;
  double val_loss = 0;
  int64_t val_samples = 0;  ///< validation samples counted (global; padding repeats excluded)
  double val_seconds = 0;
  std::map<std::string, double> val_metrics;
};

struct FitResult {
  std::vector<EpochRecord> epochs;  ///< the epochs run in this call
  int epochs_done = 0;              ///< completed epochs including those before a resume
  int64_t global_step = 0;
  bool target_reached = false;
  bool interrupted = false;         ///< stopped by stop_after_steps or a signal
  int stop_signal = 0;              ///< the signal that stopped it (stop_signal.hpp; -1: request_stop with another), else 0
  double seconds = 0;
  std::map<std::string, double> last_val_metrics;
};

/// Where fit() stands, as callbacks see it.
struct FitState {
  std::string name;  ///< TrainerOptions::name
  int rank = 0;
  bool rank0 = false;
  int ranks = 1;
  int replicas = 1;  ///< ranks holding different samples (ranks / the spatial grid's size)
  bool resumed = false;  ///< the run continues a checkpoint
  int epoch = 0;         ///< the epoch running, 0-based
  int epochs = 0;
  int64_t step_in_epoch = 0;  ///< steps done in this epoch
  int64_t steps_per_epoch = 0;
  int64_t global_step = 0;
  double running_loss = 0;         ///< this rank's mean finite loss over this call's steps of the epoch
  double epoch_seconds = 0;        ///< wall time of the epoch's training so far
  double epoch_samples = 0;        ///< this rank's samples trained on in the epoch
  double epoch_data_seconds = 0;   ///< this rank's wait for data in the epoch
  int64_t epoch_skipped_steps = 0;    ///< global
  int64_t epoch_skipped_samples = 0;  ///< global
  double train_seconds = 0;     ///< training time of this fit() call before this epoch
  int64_t steps_run = 0;        ///< steps of this fit() call
  double last_val_seconds = 0;  ///< duration of the last validation (0 before the first)
  bool validates = false;       ///< validation runs at the end of epochs
  double run_seconds = 0;       ///< since fit() started
};

class Callback {
 public:
  virtual ~Callback() = default;
  virtual void on_fit_start(const FitState&) {}
  virtual void on_epoch_start(const FitState&) {}
  virtual void on_step_end(const FitState&, const StepResult&) {}
  /// The epoch's training steps are done; validation (if any) follows.
  virtual void on_train_epoch_end(const FitState&) {}
  virtual void on_validation_start(const FitState&) {}
  virtual void on_validation_end(const FitState&, const std::map<std::string, double>& /*metrics*/) {}
  /// The epoch is complete (validated if due), before its checkpoint.
  virtual void on_epoch_end(const FitState&, const EpochRecord&) {}
  /// fit() wrote a checkpoint from `start` to `end` (now_seconds()); every rank is called.
  virtual void on_checkpoint(const FitState&, double /*start*/, double /*end*/) {}
  virtual void on_fit_end(const FitState&, const FitResult&) {}
  /// fit() is about to log a line (a stop, a target reached): a callback that keeps a line
  /// open on the terminal ends it first.
  virtual void on_log_line() {}
};

}  // namespace halo::train
