// A timeline of training in Chrome's trace format (chrome://tracing, Perfetto): one row per
// rank, one span per step phase (data wait, step guard, forward, backward, gradient wait,
// optimizer) and one per validation. Add it to a Trainer:
//
//   trainer.add_callback(std::make_shared<train::TimelineCallback>("run/trace.json"));
//
// Each rank writes its own file ("run/trace.json" on rank 0, "run/trace.rank3.json" on rank
// 3; open several at once in Perfetto to compare ranks), rewritten at every epoch's end so a
// killed job keeps what it recorded. Memory: six small records per step.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "halo/train/callback.hpp"

namespace halo::train {

class TimelineCallback : public Callback {
 public:
  /// `rank` names the row and the file; -1 takes the rank fit() runs on.
  explicit TimelineCallback(std::string path, int rank = -1);

  void on_fit_start(const FitState& s) override;
  void on_step_end(const FitState& s, const StepResult& r) override;
  void on_validation_start(const FitState& s) override;
  void on_validation_end(const FitState& s, const std::map<std::string, double>& metrics) override;
  void on_epoch_end(const FitState& s, const EpochRecord& r) override;
  void on_fit_end(const FitState& s, const FitResult& r) override;

  /// The file this rank writes.
  std::string file() const;
  /// Writes what was recorded so far.
  void write() const;

 private:
  struct Span {
    const char* name;
    double start_s, seconds;
    int64_t step;
  };
  std::string path_;
  int rank_;
  double origin_ = -1;  // now_seconds() of the first record: the trace's time zero
  double val_start_ = 0;
  std::vector<Span> spans_;
  void add(const char* name, double start, double seconds, int64_t step);
};

}  // namespace halo::train
