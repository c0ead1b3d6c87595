// Optimizer base: owns per-parameter state tensors by name, the step counter and the
// learning rate (fixed, or set before each step by a schedule).
//
// State is exported for checkpoints as name -> Tensor: "<parameter name>/<slot>" (e.g.
// "conv1/weight/momentum", "fc/bias/exp_avg_sq") and "step" (an i64 scalar with the
// number of steps taken). Loading it back and continuing gives the same parameters as
// never having stopped.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "halo/nn/parameter.hpp"
#include "halo/optim/schedule.hpp"

namespace halo::optim {

using StateDict = std::map<std::string, Tensor>;

class Optimizer {
 public:
  /// Parameters must have unique, non-empty names (compile the model first).
  Optimizer(std::vector<nn::Parameter*> params, double lr);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  virtual std::string type() const = 0;

  /// Applies one update to every parameter from its gradient (the schedule, if any, first
  /// sets the learning rate for this step's index).
  void step();
  void zero_grad();

  double lr() const { return lr_; }
  void set_lr(double lr);
  /// lr = schedule(step index) before each step; step index 0 is the first step.
  void set_schedule(Schedule s) { schedule_ = std::move(s); }
  /// Steps taken so far.
  int64_t step_count() const { return step_; }
  const std::vector<nn::Parameter*>& params() const { return params_; }

  /// All state as name -> tensor (the tensors are copies).
  StateDict state() const;
  /// Restores state exported by state() from the same kind of optimizer over parameters
  /// with the same names and shapes. Throws naming the entry that is unknown, missing or
  /// of the wrong shape.
  void load_state(const StateDict& state);

 protected:
  /// Slots every parameter carries once steps were taken ("momentum", "exp_avg", ...).
  virtual std::vector<std::string> slot_names() const = 0;
  /// Updates parameter i; `step_` already counts this step (1 on the first).
  virtual void update(size_t i, nn::Parameter& p) = 0;
  /// Updates every parameter (step() calls it after the schedule and the checks):
  /// update(i, p) for each by default; a rule with a many-parameter form overrides it.
  virtual void update_all();
  /// The state tensor `slot` of parameter i, created as zeros on first use.
  Tensor& slot(size_t i, const std::string& slot);

  double lr_;
  int64_t step_ = 0;

 private:
  std::vector<nn::Parameter*> params_;
  std::vector<std::map<std::string, Tensor>> slots_;  // per parameter
  Schedule schedule_;
};

}  // namespace halo::optim
