#include "halo/train/stop_signal.hpp"

#include <atomic>
#include <csignal>

namespace halo::train {

namespace {
// Lock-free atomics are async-signal-safe; the handler touches nothing else.
std::atomic<int> g_requested{0};
std::atomic<bool> g_installed{false};

extern "C" void on_stop_signal(int sig) {
  int expected = 0;
  if (!g_requested.compare_exchange_strong(expected, sig)) {
    // A second signal: the clean stop did not come in time (a rank stuck in a collective, or
    // an impatient user). Die as if no handler were installed.
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  }
}
}  // namespace

void install_stop_signal_handlers() {
  static_assert(std::atomic<int>::is_always_lock_free, "signal handler needs a lock-free flag");
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // blocking reads and MPI progress go on; the step loop polls
  sigaction(SIGUSR1, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  g_installed = true;
}

bool stop_signal_handlers_installed() noexcept { return g_installed.load(); }
void request_stop(int signal) noexcept { g_requested.store(signal); }
int stop_requested() noexcept { return g_requested.load(); }
void clear_stop_request() noexcept { g_requested.store(0); }

}  // namespace halo::train
