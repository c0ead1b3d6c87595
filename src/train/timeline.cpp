#include "halo/train/timeline.hpp"

#include <cstdio>
#include <filesystem>

#include "halo/util/error.hpp"
#include "halo/util/timer.hpp"

namespace halo::train {

TimelineCallback::TimelineCallback(std::string path, int rank) : path_(std::move(path)), rank_(rank) {
  HALO_CHECK_T(ConfigError, !path_.empty(), "TimelineCallback: give the trace file's path");
}

std::string TimelineCallback::file() const {
  if (rank_ <= 0) return path_;
  const std::filesystem::path p(path_);
  return (p.parent_path() / (p.stem().string() + ".rank" + std::to_string(rank_) + p.extension().string())).string();
}

void TimelineCallback::add(const char* name, double start, double seconds, int64_t step) {
  if (origin_ < 0) origin_ = start;
  spans_.push_back({name, start - origin_, seconds, step});
}

void TimelineCallback::on_fit_start(const FitState& s) {
  if (rank_ < 0) rank_ = s.rank;
}

void TimelineCallback::on_step_end(const FitState&, const StepResult& r) {
  const StepTimings& t = r.timings;
  double at = t.start;
  auto phase = [&](const char* name, double seconds) {
    add(name, at, seconds, r.global_step);
    at += seconds;
  };
  phase("data", t.data_s);
  phase("step guard", t.guard_s);
  phase("forward", t.forward_s);
  phase("backward", t.backward_s);
  phase("gradient wait", t.comm_s - t.guard_s);
  phase("optimizer", t.optimizer_s);
}

void TimelineCallback::on_validation_start(const FitState&) { val_start_ = now_seconds(); }

void TimelineCallback::on_validation_end(const FitState& s, const std::map<std::string, double>&) {
  add("validation", val_start_, now_seconds() - val_start_, s.global_step);
}

void TimelineCallback::on_epoch_end(const FitState&, const EpochRecord&) { write(); }
void TimelineCallback::on_fit_end(const FitState&, const FitResult&) { write(); }

void TimelineCallback::write() const {
  const std::string f = file();
  const std::string tmp = f + ".tmp";
  std::FILE* out = std::fopen(tmp.c_str(), "w");
  HALO_CHECK_T(IOError, out != nullptr, "timeline: cannot write '", tmp, "'");
  const int row = rank_ < 0 ? 0 : rank_;
  std::fprintf(out, "{\"traceEvents\":[\n");
  std::fprintf(out, "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%d,\"args\":{\"name\":\"rank %d\"}}", row, row);
  for (const Span& s : spans_)
    std::fprintf(out, ",\n{\"name\":\"%s\",\"ph\":\"X\",\"pid\":%d,\"tid\":0,\"ts\":%.3f,\"dur\":%.3f,\"args\":{\"step\":%lld}}",
                 s.name, row, 1e6 * s.start_s, 1e6 * s.seconds, static_cast<long long>(s.step));
  std::fprintf(out, "\n],\"displayTimeUnit\":\"ms\"}\n");
  const bool ok = std::fclose(out) == 0;
  HALO_CHECK_T(IOError, ok && std::rename(tmp.c_str(), f.c_str()) == 0, "timeline: cannot write '", f, "'");
}

}  // namespace halo::train
