// The Trainer's state, shared by trainer.cpp (construction, step, checkpoints, validation)
// and fit.cpp (the epoch loop).
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "halo/cuda/runtime.hpp"
#include "halo/dist/step_guard.hpp"
#include "halo/train/trainer.hpp"
#include "train/step_graph.hpp"

namespace halo::train {

// Each rank's loss sum and sample count of an unfinished epoch, [ranks, 2] f64.
inline const char* const kEpochLossPerRank = "progress/epoch_loss_per_rank";

struct Trainer::Impl {
  dist::Communicator comm;
  // The ranks holding different samples (TrainerOptions::data_comm; else comm): gradients
  // are averaged, samples counted and validation metrics summed over these.
  dist::Communicator data;
  nn::Model& model;
  optim::Optimizer& opt;
  nn::Loss& loss;
  data::DataLoader* train;  // null: step() only
  data::DataLoader* val;
  std::unique_ptr<ValidationMetric> metric;
  TrainerOptions o;
  std::unique_ptr<dist::GradientSynchronizer> sync;
  std::vector<nn::Parameter*> params;  // the model's, listed once (every step reads them)
  std::unique_ptr<dist::StepGuard> guard;  // when o.step_guard
  std::unique_ptr<optim::DynamicLossScaler> scaler;  // when o.loss_scaling
  std::unique_ptr<detail::StepGraphs> graphs;  // when o.cuda_graph
  // On a GPU the host only queues a step's work: its phases are timed on the device, by
  // events recorded at their boundaries (step start, forward and loss, backward, gradient
  // wait, optimizer) on the compute stream and read at the step's end.
  std::vector<std::unique_ptr<cuda::Event>> phase_events;
  bool warned_gpu_clock = false;
  std::vector<std::shared_ptr<Callback>> callbacks;  // added by the program

  // What the step guard compares across ranks besides the position.
  int64_t grad_elements = 0, grad_buckets = 0;
  uint64_t grad_layout = 0;

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
  int64_t skipped_logged = 0;      // non-finite steps explained in the log so far
  bool nonfinite_pending = false;  // a micro-batch's loss was non-finite: its accumulated step is skipped

  Impl(dist::Communicator c, nn::Model& m, optim::Optimizer& op, nn::Loss& l, data::DataLoader* t,
       data::DataLoader* v, std::unique_ptr<ValidationMetric> mt, TrainerOptions opts)
      : comm(c), data(opts.data_comm.value_or(c)), model(m), opt(op), loss(l), train(t), val(v), metric(std::move(mt)), o(std::move(opts)) {}

  bool rank0() const { return comm.rank() == 0; }
  TrainingPosition position() const {
    return {epochs_done, step_in_epoch, global_step, comm.size(), train ? train->batch_size() * data.size() : 0,
            data.size()};
  }

  // Buffers that each rank updates from its own shard (BatchNorm running statistics without a
  // synchronising reducer) drift apart across ranks. Before validating and before writing a
  // checkpoint every rank takes rank 0's, so all ranks validate with the statistics the
  // checkpoint holds, and a resumed run (which loads rank 0's everywhere) validates exactly
  // as an uninterrupted one. Collective; the buffers are small.
  void sync_buffers();
  Tensor prepare_input(const Tensor& x) const;
  Tensor prepare_target(const Tensor& y) const;
  void save(const Trainer& self, double epoch_loss_sum, double epoch_loss_count);
};

// What fit() adds to a step: its position (for the guard and for messages) and the flags it
// agrees on in the step's one small allreduce.
struct Trainer::StepContext {
  int epoch = -1;  // 0-based epoch of fit(); -1: step() called from a program's loop
  int64_t steps_per_epoch = 0;
  const data::Batch* batch = nullptr;      // names the samples of a non-finite step
  const data::Dataset* dataset = nullptr;  // the batch's source (Batch::source)
  const char* untracked = "not known (step() on tensors)";  // said instead of the samples
  double start = 0, data_s = 0;            // when the step began, and its wait for data
  // Summed over ranks with the step's non-finite flag: [0] ranks whose loss is non-finite,
  // [1] bad samples the loaders replaced in this step's batches, [2] a timed checkpoint is
  // due, [3..5] ranks that received SIGTERM, SIGUSR1 or another stop request. fit() fills
  // [1..5] through `fill_flags`, called just before the allreduce.
  int64_t flags[6] = {0, 0, 0, 0, 0, 0};
  std::function<void(int64_t* flags)> fill_flags;
};

}  // namespace halo::train
