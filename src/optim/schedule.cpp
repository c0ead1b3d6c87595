#include "halo/optim/schedule.hpp"

#include <algorithm>
#include <cmath>

#include "halo/util/error.hpp"

namespace halo::optim {

Schedule constant(double lr) {
  return [lr](int64_t) { return lr; };
}

Schedule multistep(double lr, std::vector<int64_t> milestones, double gamma) {
  HALO_CHECK_T(ConfigError, std::is_sorted(milestones.begin(), milestones.end()),
               "multistep schedule: milestones must be increasing");
  return [lr, ms = std::move(milestones), gamma](int64_t step) {
    const auto passed = std::upper_bound(ms.begin(), ms.end(), step) - ms.begin();
    return lr * std::pow(gamma, double(passed));
  };
}

Schedule cosine(double lr, int64_t end, double floor, int64_t begin) {
  HALO_CHECK_T(ConfigError, end > begin, "cosine schedule: end step ", end, " must come after begin step ", begin);
  return [=](int64_t step) {
    if (step <= begin) return lr;
    if (step >= end) return floor;
    const double t = double(step - begin) / double(end - begin);
    return floor + (lr - floor) * 0.5 * (1 + std::cos(M_PI * t));
  };
}

Schedule polynomial(double lr, int64_t end, double end_lr, double power, int64_t begin) {
  HALO_CHECK_T(ConfigError, end > begin, "polynomial schedule: end step ", end, " must come after begin step ", begin);
  HALO_CHECK_T(ConfigError, power > 0, "polynomial schedule: power ", power, " must be > 0");
  return [=](int64_t step) {
    if (step <= begin) return lr;
    if (step >= end) return end_lr;
    const double t = double(step - begin) / double(end - begin);
    return end_lr + (lr - end_lr) * std::pow(1 - t, power);
  };
}

Schedule warmup(int64_t steps, Schedule after, double start_lr) {
  HALO_CHECK_T(ConfigError, steps >= 0, "warmup: ", steps, " steps");
  HALO_CHECK_T(ConfigError, bool(after), "warmup: no schedule to hand over to");
  if (steps == 0) return after;
  return [=](int64_t step) {
    if (step >= steps) return after(step);
    const double target = after(steps);  // where the ramp meets the next schedule
    return start_lr + (target - start_lr) * double(step) / double(steps);
  };
}

int64_t epochs_to_steps(double epochs, int64_t steps_per_epoch) {
  HALO_CHECK_T(ConfigError, steps_per_epoch > 0, "epochs_to_steps: steps per epoch ", steps_per_epoch,
               " must be > 0");
  HALO_CHECK_T(ConfigError, epochs >= 0, "epochs_to_steps: negative epochs ", epochs);
  return int64_t(std::llround(epochs * double(steps_per_epoch)));
}

Schedule make_schedule(const ScheduleConfig& c, int64_t steps_per_epoch) {
  const int64_t w = epochs_to_steps(c.warmup_epochs, steps_per_epoch);
  Schedule base;
  if (c.kind == "constant") {
    base = constant(c.lr);
  } else if (c.kind == "multistep") {
    std::vector<int64_t> ms;
    for (double e : c.milestones) ms.push_back(epochs_to_steps(e, steps_per_epoch));
    base = multistep(c.lr, ms, c.gamma);
  } else if (c.kind == "cosine" || c.kind == "polynomial") {
    const int64_t end = epochs_to_steps(c.decay_epochs, steps_per_epoch);
    HALO_CHECK_T(ConfigError, end > w, "schedule '", c.kind, "': decay_epochs (", c.decay_epochs,
                 ") must exceed warmup_epochs (", c.warmup_epochs, ")");
    base = c.kind == "cosine" ? cosine(c.lr, end, c.end_lr, w) : polynomial(c.lr, end, c.end_lr, c.power, w);
  } else {
    throw ConfigError(str("schedule: unknown kind '", c.kind, "' (constant, multistep, cosine or polynomial)"));
  }
  return w > 0 ? warmup(w, base, c.warmup_start_lr) : base;
}

}  // namespace halo::optim
