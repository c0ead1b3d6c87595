// Learning-rate schedules: functions of the step index (0 for the first step). Compose
// them (warmup then another schedule) or build one from an epoch-based description with
// make_schedule(config, steps_per_epoch).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace halo::optim {

using Schedule = std::function<double(int64_t step)>;

Schedule constant(double lr);
/// lr * gamma^(number of milestones <= step).
Schedule multistep(double lr, std::vector<int64_t> milestones, double gamma);
/// Half cosine from lr at step `begin` to `floor` at step `end`; lr before, floor after.
Schedule cosine(double lr, int64_t end, double floor = 0.0, int64_t begin = 0);
/// end_lr + (lr - end_lr) * (1 - (step-begin)/(end-begin))^power between begin and end.
Schedule polynomial(double lr, int64_t end, double end_lr = 0.0, double power = 1.0, int64_t begin = 0);
/// Linear ramp from start_lr at step 0 to after(steps) at step `steps`, then after(step).
/// `after` sees absolute steps (milestones and decay ends count from the first step).
Schedule warmup(int64_t steps, Schedule after, double start_lr = 0.0);
/// Linear warmup to a constant lr.
inline Schedule linear_warmup(int64_t steps, double lr, double start_lr = 0.0) {
  return warmup(steps, constant(lr), start_lr);
}

/// Rounds a (possibly fractional) number of epochs to steps.
int64_t epochs_to_steps(double epochs, int64_t steps_per_epoch);

/// An epoch-based schedule as a configuration file states it.
struct ScheduleConfig {
  std::string kind = "constant";  ///< constant | multistep | cosine | polynomial
  double lr = 0.01;
  double warmup_epochs = 0;        ///< 0: no warmup
  double warmup_start_lr = 0;
  std::vector<double> milestones;  ///< multistep: epochs where lr is multiplied by gamma
  double gamma = 0.1;
  double decay_epochs = 0;         ///< cosine/polynomial: epoch where the decay ends
  double end_lr = 0;               ///< cosine floor / polynomial end value
  double power = 1;                ///< polynomial
};
/// Converts epochs to steps; the cosine and polynomial decays start after the warmup.
/// Throws ConfigError on an unknown kind or inconsistent values.
Schedule make_schedule(const ScheduleConfig& c, int64_t steps_per_epoch);

}  // namespace halo::optim
