// The data-parallel training loop shared by every driver (CosmoFlow, DeepCAM, your own):
//
//   train::Trainer trainer(comm, model, optimizer, loss, train_loader, val_loader,
//                          std::make_unique<MyMetric>(), options);
//   train::FitResult r = trainer.fit();
//
// or, from a simulation's own time loop, one synchronised step at a time:
//
//   train::Trainer trainer(comm, model, optimizer, loss, options);
//   for (int t = 0; t < steps; ++t) {
//     simulate(fields);
//     train::StepResult s = trainer.step(x, y);  // every rank calls it with its own batch
//   }
//
// One step: zero_grad, forward, loss, backward (the gradient synchroniser's hooks start the
// allreduces while backward runs), wait for the averaged gradients, optional global-norm
// clipping, optimizer step (its schedule sets the learning rate from the global step).
// fit() adds the epochs around it: validation after every epoch with a task-specific metric
// reduced across ranks as sums and counts, checkpoints (every N epochs, every M minutes, at
// the end) and resume, a target-metric stop that every rank agrees on, stop signals; the
// progress line, metrics file, MLPerf log and epoch summary are callbacks (callback.hpp).
//
// Nothing here knows about a particular science: the task enters through the model, the
// loss, the loaders and a ValidationMetric.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include "halo/data/loader.hpp"
#include "halo/dist/communicator.hpp"
#include "halo/dist/grad_sync.hpp"
#include "halo/dist/metrics.hpp"
#include "halo/nn/loss.hpp"
#include "halo/nn/model.hpp"
#include "halo/optim/loss_scaler.hpp"
#include "halo/optim/optimizer.hpp"
#include "halo/train/callback.hpp"
#include "halo/train/checkpoint.hpp"
#include "halo/train/mllog.hpp"

namespace halo::train {

/// A task's validation metric. The trainer calls reset() before a validation pass, add()
/// on every local batch (the model's prediction and the batch's target), then reduces what
/// add() accumulated in the reducer (sums and counts, added over ranks) and asks finish()
/// for the reported values. Every rank must add the same metric names.
class ValidationMetric {
 public:
  virtual ~ValidationMetric() = default;
  virtual void add(const Tensor& prediction, const Tensor& target, dist::MetricReducer& sums) = 0;
  /// Reported values from the global totals; the default reports every mean under its name.
  virtual std::map<std::string, double> finish(const std::map<std::string, dist::MetricReducer::Total>& totals);
};

/// A non-finite loss or gradient under NonFinitePolicy::stop, or a checkpoint that would
/// hold non-finite values. Thrown on every rank at once (the decision is taken from
/// reduced values), so no rank is left waiting in a collective.
class NonFiniteError : public Error {
 public:
  using Error::Error;
};

/// What a step with a non-finite loss (on any rank) or non-finite averaged gradients does.
/// With loss scaling, an overflow is the scaler's to handle (skip, back off) until the scale
/// is at its minimum; only then, or for a non-finite loss, does this policy apply.
enum class NonFinitePolicy {
  stop,  ///< fit() throws NonFiniteError naming epoch, step and the offending batch's samples
  skip,  ///< no optimizer step on any rank; counted in EpochRecord::skipped_steps
};

struct TrainerOptions {
  int epochs = 1;
  /// Stop (with a checkpoint, if a path is set) once this many optimizer steps were taken
  /// in total, counted from the very first step of the run (also across resumes); -1: never.
  /// Lets tests and job scripts interrupt a run at a precise point.
  int64_t stop_after_steps = -1;
  /// > 0: clip gradients to this global L2 norm after the allreduce.
  double clip_grad_norm = 0;
  /// Dynamic loss scaling (for fp16 gradients): the loss gradient is multiplied by S, the
  /// averaged gradients divided by S before clipping and the update; a step with inf/NaN
  /// gradients is skipped and S backs off (optim::DynamicLossScaler). Its state goes into
  /// checkpoints as loss_scaler/.
  bool loss_scaling = false;
  optim::LossScalerOptions loss_scaler;
  NonFinitePolicy on_nonfinite = NonFinitePolicy::stop;
  /// Input tensors are converted to this memory format once per batch (the CPU convolution
  /// kernels are fastest on channels-last).
  MemoryFormat input_format = MemoryFormat::channels_last;
  /// The activations' type: f32, or bf16 for mixed precision (f32 inputs cast to bf16 once
  /// per batch, bf16 ones taken as they are, as the drivers' loaders deliver them; every
  /// activation and activation gradient bf16, parameters, their gradients and
  /// the optimizer's state f32). bf16 on the CPU needs oneDNN and runs convolutions, pooling
  /// and point-wise layers; the drivers' training.precision sets it.
  DType precision = DType::f32;
  /// Device the model lives on (the caller moves it there). On a GPU the trainer refuses at
  /// construction a model with a layer lacking a CUDA kernel (check_model_runs_on) and copies
  /// each training batch to the GPU on a copy stream while the previous step runs
  /// (DeviceBatchQueue); validation batches are copied synchronously. Set the loader's
  /// pin_memory so these copies can overlap.
  Device device = Device::cpu();
  /// Bucketing, compression and accumulation of the gradient allreduce; on a GPU the NCCL
  /// communicator (Driver::trainer_options() sets it; null: the synchroniser makes one).
  dist::GradSyncOptions grad_sync;
  /// Spatial parallelism (dist::SpatialGrid): the ranks holding different samples, i.e. the
  /// grid's data(). Gradients are averaged, samples counted and validation metrics summed
  /// over these; checkpoints, the parameter broadcast and the step agreement stay on the
  /// trainer's communicator. Unset: the trainer's communicator (plain data parallelism).
  std::optional<dist::Communicator> data_comm;
  /// Before every step's first collective (and at every epoch's end) check that all ranks
  /// are at the same step with the same gradient buckets (dist::StepGuard): a mismatch is a
  /// DistError naming the ranks instead of a truncated message or corrupted memory. Costs
  /// one 112-byte allreduce per step.
  bool step_guard = true;
  /// On a GPU: each step's compute (zero_grad, forward, the loss's gradient, backward, the
  /// gradient allreduces on NCCL and their wait) replays a CUDA graph captured once per batch
  /// shape (a shape's first step runs eagerly, the next of that shape is captured when nothing
  /// else ran in between, else it runs eagerly too): one launch in place
  /// of hundreds, no host in the loop. The loss's value, the non-finite checks, clipping and
  /// the optimizer with its schedule run after the replay, as in an eager step. Each graph
  /// keeps one step's activations (at most 4 batch shapes; more run eagerly). Refused with
  /// loss scaling (the scale is a host value a graph would freeze) and with gradient
  /// accumulation; a step that cannot be captured (a layer that reads a value back, as a
  /// synchronised BatchNorm's host reducer does) stops the run at its second step, naming the
  /// reason. Per-layer trace events and bucket times come from eager steps only: a replayed
  /// step is one compute phase (its forward time holds the whole replay). Off: eager steps.
  bool cuda_graph = false;

  /// Validation after every this many epochs (and after the last); 0 never validates.
  int validate_every = 1;
  /// Early stop once the validation metric `target_metric` reaches `target_value`
  /// (<= when lower_is_better, else >=). Empty name: no target.
  std::string target_metric;
  double target_value = 0;
  bool target_lower_is_better = true;

  /// Checkpoint file (written atomically by rank 0); empty: no checkpoints.
  std::string checkpoint_path;
  int checkpoint_every_epochs = 1;    ///< 0: not by epochs
  double checkpoint_every_minutes = 0;  ///< 0: not by time
  bool checkpoint_at_end = true;
  /// How many checkpoints to keep: checkpoint_path is the newest, the older ones are named by
  /// their global step (kept_checkpoint_name in checkpoint.hpp). 1: only the newest.
  int checkpoint_keep = 1;
  /// Continue from this checkpoint (empty: start fresh).
  std::string resume_from;
  /// Older checkpoints, newest first, tried in turn when resume_from does not load or fails
  /// its checksums (rank 0 picks the one every rank then loads, with a warning).
  std::vector<std::string> resume_fallbacks;
  /// Extra values stored under meta/ in every checkpoint (e.g. the configuration text).
  std::map<std::string, std::string> checkpoint_strings;

  /// JSON-lines file with one record per epoch (rank 0); empty: none.
  std::string metrics_file;
  /// Chrome trace of the run (TraceCallback, train/trace.hpp): every rank's layers, step
  /// phases, gradient buckets, validations and checkpoints in one file written by rank 0
  /// (rewritten at every checkpoint and at the end); empty: none.
  std::string trace_file;
  bool progress = true;
  /// "auto" (redraw one line when stdout is a terminal), "terminal" or "plain".
  std::string progress_style = "auto";
  double progress_interval_s = 10;  ///< plain-line interval when stdout is not a terminal
  /// Log a one-line summary after every epoch.
  bool epoch_summary = true;
  std::string name = "train";  ///< names the run in log lines
  /// MLPerf log (output.mllog, not owned; null: none): fit() adds epoch_start/epoch_stop and
  /// eval_start/eval_stop with epoch_num and the logger's eval metric. Every rank may pass
  /// one; only rank 0's is enabled.
  MLLogger* mllog = nullptr;
};

class Trainer {
 public:
  /// The model must be compiled and initialised; its parameters are broadcast from rank 0
  /// (after a consistency check) unless a checkpoint is loaded. `val` may be null.
  Trainer(dist::Communicator comm, nn::Model& model, optim::Optimizer& optimizer, nn::Loss& loss,
          data::DataLoader& train, data::DataLoader* val, std::unique_ptr<ValidationMetric> metric,
          TrainerOptions options);
  /// Without loaders: for step() from a program's own loop (fit() and validate() refuse).
  /// The epoch, validation, progress and metrics options do not apply; checkpoint_path,
  /// resume_from and the step options (clipping, loss scaling, non-finite policy, guard) do.
  Trainer(dist::Communicator comm, nn::Model& model, optim::Optimizer& optimizer, nn::Loss& loss,
          TrainerOptions options = {});
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  /// One synchronised optimizer step on this rank's batch (collective: every rank calls it,
  /// with batches of any size >= 1): zero_grad, forward, loss, backward with the gradient
  /// allreduces overlapping it, wait, loss-scaling and non-finite handling (agreed on by all
  /// ranks), clipping, optimizer step. `x` is (N, C, spatial...), `y` the loss's target; both
  /// are moved to the trainer's device and input format. Throws NonFiniteError under
  /// NonFinitePolicy::stop.
  StepResult step(const Tensor& x, const Tensor& y);
  /// The same on a loader's batch (its bad-sample count and sample names are used).
  StepResult step(const data::Batch& batch);

  /// Loops over the epochs of the training loader (see TrainerOptions), built on step().
  FitResult fit();
  /// Adds a callback to fit() (called after the built-in ones, in the order added).
  void add_callback(std::shared_ptr<Callback> callback);

  /// Writes the checkpoint now (collective; rank 0 writes to options.checkpoint_path).
  void save_checkpoint();

  /// Validation pass over the whole validation loader: loss and the metric's values. Each
  /// real sample is counted once: the rows of a batch from data::Batch::real on (padding
  /// that evens out the ranks) are not passed to the loss or the metric. `val_samples`
  /// receives the global count of samples counted.
  std::map<std::string, double> validate(int64_t epoch, double* val_loss = nullptr, int64_t* val_samples = nullptr);

  /// Everything a resumed run needs (training_state() of checkpoint.hpp: parameters, buffers,
  /// optimizer and scaler state, Dropout steps, position) with options.checkpoint_strings;
  /// checkpoints written by fit() add the running loss sums of an unfinished epoch.
  CheckpointData checkpoint_state() const;
  void load_state(const CheckpointData& data);

  /// Epochs completed, steps done in the current epoch, optimizer steps in total.
  int epochs_done() const;
  int64_t step_in_epoch() const;
  int64_t global_step() const;

 private:
  /// resume_from, or the newest of resume_fallbacks that loads (rank 0 decides).
  CheckpointData load_resume_checkpoint();
  void start();  // the checks and set-up both constructors share
  struct Impl;
  struct StepContext;
  struct FitLoop;  // fit()'s state between its phases (fit.cpp)
  StepResult run_step(const Tensor& x, const Tensor& y, int64_t batch_size, StepContext& ctx);
  std::unique_ptr<Impl> impl_;
};

/// Piecewise-constant learning rate: `lr` until the first boundary, then lr * factors[i]
/// from boundaries[i] on (factors are relative to lr, not compounded), e.g. MLPerf
/// CosmoFlow's x0.25 after epoch 32 and x0.125 after epoch 64. Boundaries are steps.
optim::Schedule piecewise(double lr, std::vector<int64_t> boundaries, std::vector<double> factors);

}  // namespace halo::train
