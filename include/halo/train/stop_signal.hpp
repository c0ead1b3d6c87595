// Stopping a run cleanly on a signal: the batch system's warning before the time limit.
//
// Slurm can signal a job some time before its limit (sbatch --signal=B:USR1@300) and sends
// SIGTERM at the limit. install_stop_signal_handlers() makes SIGUSR1 and SIGTERM a request:
// every Trainer::fit() agrees on it at the next step boundary (one small allreduce per step,
// so ranks that saw the signal at different moments stop after the same step), writes a
// checkpoint and returns with FitResult::stop_signal set; the drivers then exit with
// kExitResumable, which the sbatch scripts in examples/ turn into a requeue and --resume.
// A second signal while the first is pending ends the process the default way, so a rank
// stuck in a collective can still be killed.
//
// The drivers install the handlers; a code embedding Halo may call it, or call
// request_stop() from its own handler.
#pragma once

namespace halo::train {

/// Exit status of a driver stopped by a signal after writing its checkpoint (EX_TEMPFAIL:
/// "try again"): the job can be requeued and resumed.
constexpr int kExitResumable = 75;

/// SIGUSR1 and SIGTERM request a stop (see above). Idempotent.
void install_stop_signal_handlers();
/// True once install_stop_signal_handlers() ran: only then do trainers check for a request.
bool stop_signal_handlers_installed() noexcept;
/// Async-signal-safe: records a stop request for `signal`.
void request_stop(int signal) noexcept;
/// The signal of the pending request, 0 when none.
int stop_requested() noexcept;
/// Forgets the request (after a stop was handled, or in tests).
void clear_stop_request() noexcept;

}  // namespace halo::train
