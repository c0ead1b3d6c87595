#include "halo/train/progress.hpp"

#include <unistd.h>

#include <cmath>

#include "halo/util/error.hpp"
#include "halo/util/timer.hpp"

namespace halo::train {

ProgressLine::ProgressLine(bool enabled, std::FILE* out, double plain_interval_s)
    : enabled_(enabled), out_(out ? out : stdout), tty_(isatty(fileno(out_)) != 0), interval_(plain_interval_s) {}

std::string ProgressLine::format_duration(double s) {
  if (s < 0 || !std::isfinite(s)) return "--";
  long t = long(s + 0.5);
  char buf[32];
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else
    std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  return buf;
}

std::string ProgressLine::format(const ProgressState& s) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "epoch %d/%d  step %lld/%lld  loss %.4g  %.1f samples/s  data wait %.0f%%  ETA %s",
                s.epoch, s.epochs, (long long)s.step, (long long)s.steps_per_epoch, s.loss, s.samples_per_s,
                s.data_wait_pct, format_duration(s.eta_s).c_str());
  std::string out = buf;
  // Only when something was skipped: a clean run's line stays as it was.
  if (s.skipped_steps > 0) out += "  skipped steps " + std::to_string(s.skipped_steps);
  if (s.skipped_samples > 0) out += "  bad samples " + std::to_string(s.skipped_samples);
  return out;
}

void ProgressLine::update(const ProgressState& s) {
  if (!enabled_) return;
  const double t = now_seconds();
  const bool last_of_epoch = s.step == s.steps_per_epoch;
  if (tty_) {
    std::fprintf(out_, "\r\033[K%s", format(s).c_str());
    open_line_ = true;
  } else if (t - last_print_ >= interval_ || last_of_epoch) {
    std::fprintf(out_, "%s\n", format(s).c_str());
    last_print_ = t;
  }
  std::fflush(out_);
}

void ProgressLine::finish_line() {
  if (enabled_ && open_line_) {
    std::fprintf(out_, "\n");
    std::fflush(out_);
  }
  open_line_ = false;
}

}  // namespace halo::train
