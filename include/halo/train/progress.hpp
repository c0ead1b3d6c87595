// The rank-0 progress line: epoch, step, loss, samples/s, % of time waiting for data, ETA.
// On a terminal it redraws one line; otherwise (batch jobs, pipes) it prints plain lines
// at most every `plain_interval_s` seconds, so Slurm output files stay readable.
#pragma once
#include <cstdio>
#include <string>

namespace halo::train {

struct ProgressState {
  int epoch = 0;
  int epochs = 0;
  int64_t step = 0;           ///< step within the epoch (1-based once a step is done)
  int64_t steps_per_epoch = 0;
  double loss = 0.0;
  double samples_per_s = 0.0;
  double data_wait_pct = 0.0;
  double eta_s = -1.0;        ///< seconds left for the whole run; negative when unknown
  int64_t skipped_steps = 0;    ///< this epoch: steps skipped for non-finite values (shown when > 0)
  int64_t skipped_samples = 0;  ///< this epoch: bad samples replaced (shown when > 0)
};

class ProgressLine {
 public:
  /// `enabled` is false on ranks other than 0. `out` defaults to stdout.
  explicit ProgressLine(bool enabled, std::FILE* out = nullptr, double plain_interval_s = 10.0);
  void update(const ProgressState& s);
  /// Ends the current line (before printing anything else, e.g. the epoch summary).
  void finish_line();
  bool is_terminal() const { return tty_; }
  /// Overrides the terminal detection: launchers such as Open MPI's mpiexec hand ranks a
  /// pseudo-terminal even when the job's output goes to a file or a pipe.
  void set_terminal(bool tty) { tty_ = tty; }
  static std::string format(const ProgressState& s);
  static std::string format_duration(double seconds);

 private:
  bool enabled_;
  std::FILE* out_;
  bool tty_;
  double interval_;
  double last_print_ = -1e30;
  bool open_line_ = false;
};

}  // namespace halo::train
