// A timeline of training, written as one Chrome trace (JSON) for all ranks: load it in
// Perfetto (ui.perfetto.dev) or chrome://tracing. Each rank is a process with two tracks:
// "compute" (every layer's forward and backward, the step's phases: data wait, step guard,
// forward, backward, gradient wait, optimizer; validation; checkpoints) and "allreduce"
// (each gradient bucket from posted to done, and the moment it became ready).
//
// In fit() it is one option (TrainerOptions::trace_file, the drivers' output.trace); a
// program with its own loop uses the recorder directly:
//
//   train::TraceRecorder trace(comm);       // collective: the ranks agree on time zero
//   trace.attach(model);                    // layer events from the model's layer timer
//   ... trace.span("optimizer", "step", t0, t1); trace.buckets(sync); ...
//   trace.write("trace.json");              // collective: rank 0 writes every rank's events
//
// Time zero is taken right after a barrier, so tracks of different ranks (and nodes, whose
// clocks are unrelated) line up to within the barrier's exit skew (microseconds).
// Recording an event is a clock read and a push into a preallocated buffer; when
// `max_events` is reached further events are counted, not kept.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "halo/dist/communicator.hpp"
#include "halo/train/callback.hpp"

namespace halo::nn {
class Model;
}
namespace halo::dist {
class GradientSynchronizer;
}

namespace halo::train {

class TraceRecorder {
 public:
  /// Collective over `comm`. `max_events` bounds this rank's memory (about 64 bytes each).
  explicit TraceRecorder(dist::Communicator comm, size_t max_events = size_t(1) << 20);
  ~TraceRecorder();
  TraceRecorder(const TraceRecorder&) = delete;
  TraceRecorder& operator=(const TraceRecorder&) = delete;

  /// Records each layer's forward and backward (Model::set_layer_timer; replaces another
  /// timer). detach() or the recorder's destruction removes it.
  void attach(nn::Model& model);
  void detach();
  /// An event on the compute track from t0 to t1 (halo::now_seconds()). `category` groups
  /// events in the viewer: "layer", "step", "data", "validation", "checkpoint".
  void span(const std::string& name, const char* category, double t0, double t1);
  /// The buckets of the synchroniser's last step: ready (instant) and posted..done (span)
  /// on the allreduce track. Call once per step after wait().
  void buckets(const dist::GradientSynchronizer& sync);
  /// Events kept and dropped (over max_events) on this rank.
  size_t events() const;
  size_t dropped() const;
  /// Collective: gathers every rank's events to rank 0, which writes `path` (atomically:
  /// a temporary file renamed). Throws IOError on rank 0 when it cannot write, on every
  /// rank (so none waits in a collective).
  void write(const std::string& path) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The trace as a fit() callback (TrainerOptions::trace_file builds it). Its collectives
/// run where every rank is together: the recorder's barrier in on_fit_start, and the merged
/// file rewritten at every checkpoint (on_checkpoint) and at the end (on_fit_end, unless the
/// last checkpoint already wrote everything), so a run stopped by a signal or killed later
/// keeps what was recorded up to its last checkpoint.
class TraceCallback : public Callback {
 public:
  /// `sync` (may be null) supplies the gradient buckets of every step.
  TraceCallback(std::string path, dist::Communicator comm, nn::Model& model, const dist::GradientSynchronizer* sync);
  ~TraceCallback() override;

  void on_fit_start(const FitState& s) override;
  void on_step_end(const FitState& s, const StepResult& r) override;
  void on_validation_start(const FitState& s) override;
  void on_validation_end(const FitState& s, const std::map<std::string, double>& metrics) override;
  void on_checkpoint(const FitState& s, double start, double end) override;
  void on_fit_end(const FitState& s, const FitResult& r) override;

  const TraceRecorder* recorder() const { return recorder_.get(); }

 private:
  std::string path_;
  dist::Communicator comm_;
  nn::Model& model_;
  const dist::GradientSynchronizer* sync_;
  std::unique_ptr<TraceRecorder> recorder_;
  double val_start_ = 0;
  int64_t unwritten_ = 0;  // steps and validations recorded since the file was last written
};

}  // namespace halo::train
