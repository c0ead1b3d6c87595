#include "halo/dist/watchdog.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "halo/util/timer.hpp"

namespace halo::dist {
namespace {

constexpr int kTagStall = 7101;   // rank -> 0: "my oldest collective waits too long"
constexpr int kTagQuery = 7102;   // coordinator (0, or a deputy) -> rank: "tell me your state"
constexpr int kTagStatus = 7103;  // rank -> coordinator: RankStatus
constexpr int kStallExitCode = 3;
constexpr int kDeputies = 4;     // ranks that coordinate the report when rank 0 cannot

void copy_name(char* dst, size_t cap, const std::string& src) {
  size_t n = std::min(cap - 1, src.size());
  std::memcpy(dst, src.data(), n);
  dst[n] = '\0';
}

}  // namespace

// The watchdog's state and thread; see watchdog.hpp for the protocol.
struct Watchdog::Impl {
  Impl(MPI_Comm comm, bool use_mpi, double timeout_s, double poll_s);
  ~Impl();

  int64_t enter(const std::string& what);
  void leave(int64_t seq);
  int64_t entered() const;
  RankStatus status() const;
  void stop();

  void run();
  void answer_queries();
  void coordinate(const StallInfo& stall, const std::string& note = "");
  double coordinate_wait() const;
  [[noreturn]] void abort_job(const std::string& report);

  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
  bool use_mpi_;
  std::atomic<double> timeout_s_;
  double poll_s_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  int64_t entered_ = 0;
  std::string last_name_;
  double last_activity_;
  struct Active { std::string name; double start; };
  std::map<int64_t, Active> active_;
  std::thread thread_;
};

namespace {

// Watchdog threads must stop before MPI_Finalize: MPI deletes the attributes of
// MPI_COMM_SELF first thing in MPI_Finalize, so a delete callback there stops them all,
// whoever finalises MPI (Halo or the host application).
std::mutex g_registry_mu;
std::set<Watchdog*> g_registry;
int g_finalize_keyval = MPI_KEYVAL_INVALID;

int stop_all_at_finalize(MPI_Comm, int, void*, void*) {
  std::lock_guard<std::mutex> lock(g_registry_mu);
  for (Watchdog* w : g_registry) w->stop();
  return MPI_SUCCESS;
}

void register_watchdog(Watchdog* w) {
  std::lock_guard<std::mutex> lock(g_registry_mu);
  if (g_finalize_keyval == MPI_KEYVAL_INVALID) {
    MPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, stop_all_at_finalize, &g_finalize_keyval, nullptr);
    MPI_Comm_set_attr(MPI_COMM_SELF, g_finalize_keyval, nullptr);
  }
  g_registry.insert(w);
}

void unregister_watchdog(Watchdog* w) {
  std::lock_guard<std::mutex> lock(g_registry_mu);
  g_registry.erase(w);
}

}  // namespace

std::string format_rank_list(const std::vector<int>& ranks_in) {
  std::vector<int> ranks = ranks_in;
  std::sort(ranks.begin(), ranks.end());
  std::ostringstream os;
  for (size_t i = 0; i < ranks.size();) {
    size_t j = i;
    while (j + 1 < ranks.size() && ranks[j + 1] == ranks[j] + 1) ++j;
    if (i) os << ',';
    os << ranks[i];
    if (j > i) os << '-' << ranks[j];
    i = j + 1;
  }
  return os.str();
}

std::string format_stall_report(const StallInfo& stall, const std::vector<RankStatus>& ranks, double timeout_s,
                                int comm_size) {
  if (comm_size < 0) comm_size = int(ranks.size());
  // A rank that did not answer is stopped, dead or stuck so hard that its watchdog thread
  // cannot run: whatever it was doing, it is not taking part, so it counts as not joined.
  std::vector<int> waiting, missing, silent;
  for (const RankStatus& r : ranks) {
    if (!r.responded) {
      silent.push_back(r.rank);
      missing.push_back(r.rank);
    } else if (r.entered < stall.seq) {
      missing.push_back(r.rank);
    } else {
      waiting.push_back(r.rank);
    }
  }
  // Only the reporting rank's own state is known when it could not ask the others.
  const bool asked_all = int(ranks.size()) >= comm_size;
  std::ostringstream os;
  os << "halo watchdog: collective #" << stall.seq << " '" << stall.name << "' has waited "
     << stall.waited_s << " s on rank " << stall.rank << " (limit " << timeout_s << " s, communicator of "
     << comm_size << " ranks)\n";
  if (!asked_all) {
    os << "  rank " << stall.rank << " could not ask the other ranks: which ranks have not joined is unknown\n";
  } else {
    os << "  ranks that entered it: " << (waiting.empty() ? "none" : format_rank_list(waiting)) << "\n";
    os << "  ranks that have not joined: " << (missing.empty() ? "none" : format_rank_list(missing));
    if (!silent.empty()) os << " (" << format_rank_list(silent) << " did not answer the watchdog)";
    os << "\n";
  }
  int shown = 0;
  for (const RankStatus& r : ranks) {
    if (r.responded && r.entered >= stall.seq) continue;
    if (shown++ == 8) {
      os << "    ...\n";
      break;
    }
    if (!r.responded)
      os << "    rank " << r.rank << ": did not answer (stopped, dead or blocked)\n";
    else
      os << "    rank " << r.rank << ": last entered #" << r.entered << " '" << r.last_name
         << "', no collective for " << r.idle_s << " s\n";
  }
  if (!silent.empty())
    os << "  ranks that did not answer the watchdog (dead or MPI blocked): " << format_rank_list(silent) << "\n";
  os << "  aborting the job (exit code " << kStallExitCode
     << "). A rank that skips a collective or works much longer than the others causes this; "
        "raise the limit (dist.stall_timeout_s in the drivers, CommunicatorOptions::stall_timeout_s in code) if the wait is legitimate.\n";
  return os.str();
}

Watchdog::Impl::Impl(MPI_Comm comm, bool use_mpi, double timeout_s, double poll_s)
    : comm_(comm), use_mpi_(use_mpi), timeout_s_(timeout_s), poll_s_(poll_s), last_activity_(now_seconds()) {
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
  thread_ = std::thread([this] { run(); });
}

Watchdog::Impl::~Impl() { stop(); }

void Watchdog::Impl::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

int64_t Watchdog::Impl::enter(const std::string& what) {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t seq = ++entered_;
  last_name_ = what;
  last_activity_ = now_seconds();
  active_[seq] = Active{what, last_activity_};
  return seq;
}

void Watchdog::Impl::leave(int64_t seq) {
  std::lock_guard<std::mutex> lock(mu_);
  active_.erase(seq);
  last_activity_ = now_seconds();
}

int64_t Watchdog::Impl::entered() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entered_;
}

RankStatus Watchdog::Impl::status() const {
  std::lock_guard<std::mutex> lock(mu_);
  RankStatus s;
  double now = now_seconds();
  s.rank = rank_;
  s.responded = 1;
  s.entered = entered_;
  s.idle_s = now - last_activity_;
  copy_name(s.last_name, sizeof s.last_name, last_name_);
  if (!active_.empty()) {
    s.oldest_seq = active_.begin()->first;
    s.oldest_age_s = now - active_.begin()->second.start;
    copy_name(s.oldest_name, sizeof s.oldest_name, active_.begin()->second.name);
  }
  return s;
}

void Watchdog::Impl::answer_queries() {
  for (;;) {
    int flag = 0;
    MPI_Status st;
    MPI_Iprobe(MPI_ANY_SOURCE, kTagQuery, comm_, &flag, &st);
    if (!flag) return;
    char dummy = 0;
    MPI_Recv(&dummy, 1, MPI_CHAR, st.MPI_SOURCE, kTagQuery, comm_, MPI_STATUS_IGNORE);
    RankStatus s = status();
    MPI_Send(&s, int(sizeof s), MPI_BYTE, st.MPI_SOURCE, kTagStatus, comm_);
  }
}

void Watchdog::Impl::coordinate(const StallInfo& stall, const std::string& note) {
  std::vector<RankStatus> ranks(size_t(size_), RankStatus{});
  for (int r = 0; r < size_; ++r) ranks[size_t(r)].rank = r;
  ranks[size_t(rank_)] = status();
  std::vector<MPI_Request> sends;
  char query = 1;
  for (int r = 0; r < size_; ++r) {
    if (r == rank_) continue;
    sends.emplace_back();
    MPI_Isend(&query, 1, MPI_CHAR, r, kTagQuery, comm_, &sends.back());
  }
  // Every live rank's watchdog answers within a poll period; a second covers slow nodes.
  double deadline = now_seconds() + coordinate_wait();
  int answered = 1;
  while (answered < size_ && now_seconds() < deadline) {
    // Another rank may be coordinating at the same time (a deputy while rank 0 is slow):
    // it must not count this one as silent.
    answer_queries();
    int flag = 0;
    MPI_Status st;
    MPI_Iprobe(MPI_ANY_SOURCE, kTagStatus, comm_, &flag, &st);
    if (!flag) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    RankStatus s;
    MPI_Recv(&s, int(sizeof s), MPI_BYTE, st.MPI_SOURCE, kTagStatus, comm_, MPI_STATUS_IGNORE);
    if (!ranks[size_t(st.MPI_SOURCE)].responded) ++answered;
    ranks[size_t(st.MPI_SOURCE)] = s;
    ranks[size_t(st.MPI_SOURCE)].rank = st.MPI_SOURCE;
  }
  abort_job(format_stall_report(stall, ranks, timeout_s_.load(), size_) + note);
}

double Watchdog::Impl::coordinate_wait() const { return std::max(1.0, 20 * poll_s_); }

void Watchdog::Impl::abort_job(const std::string& report) {
  std::fputs(report.c_str(), stderr);
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, kStallExitCode);
  std::_Exit(kStallExitCode);  // MPI_Abort does not return; this is for the record
}

void Watchdog::Impl::run() {
  bool reported = false;
  double give_up_at = 0;
  StallInfo mine;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::duration<double>(poll_s_), [&] { return stop_; });
      if (stop_) return;
    }
    if (use_mpi_) {
      answer_queries();
      if (rank_ == 0) {
        int flag = 0;
        MPI_Status st;
        MPI_Iprobe(MPI_ANY_SOURCE, kTagStall, comm_, &flag, &st);
        if (flag) {
          StallInfo other;
          MPI_Recv(&other, int(sizeof other), MPI_BYTE, st.MPI_SOURCE, kTagStall, comm_, MPI_STATUS_IGNORE);
          coordinate(other);
        }
      }
    }
    RankStatus s = status();
    double limit = timeout_s_.load();
    if (!reported && s.oldest_seq != 0 && s.oldest_age_s > limit) {
      reported = true;
      mine.rank = rank_;
      mine.seq = s.oldest_seq;
      mine.waited_s = s.oldest_age_s;
      std::memcpy(mine.name, s.oldest_name, sizeof mine.name);
      if (!use_mpi_) abort_job(format_stall_report(mine, {s}, limit, size_));
      if (rank_ == 0) coordinate(mine);
      MPI_Send(&mine, int(sizeof mine), MPI_BYTE, 0, kTagStall, comm_);
      // Rank 0 normally aborts the job within a second. If it cannot (it is the stopped or
      // dead rank itself), ranks 1, 2, ... kDeputies take its place in turn, each after the
      // previous one had time to finish; the others then only speak for themselves, so a
      // job of thousands of ranks does not query itself thousands of times over.
      const int turn = std::min(rank_, kDeputies + 1) - 1;
      give_up_at = now_seconds() + std::max(5.0, 100 * poll_s_) + turn * (coordinate_wait() + 1.0);
    }
    if (reported && now_seconds() > give_up_at) {
      if (rank_ <= kDeputies)
        coordinate(mine, "  (rank 0 did not coordinate the report: rank " + std::to_string(rank_) + " did)\n");
      abort_job(format_stall_report(mine, {s}, limit, size_) + "  (rank 0 did not coordinate the report)\n");
    }
  }
}

Watchdog::Watchdog(MPI_Comm comm, bool use_mpi, double timeout_s, double poll_s)
    : impl_(std::make_unique<Impl>(comm, use_mpi, timeout_s, poll_s)) {
  register_watchdog(this);
}

Watchdog::~Watchdog() {
  impl_->stop();
  unregister_watchdog(this);
}

int64_t Watchdog::enter(const std::string& what) { return impl_->enter(what); }
void Watchdog::leave(int64_t seq) { impl_->leave(seq); }
void Watchdog::set_timeout(double seconds) { impl_->timeout_s_.store(seconds); }
double Watchdog::timeout() const { return impl_->timeout_s_.load(); }
int64_t Watchdog::entered() const { return impl_->entered(); }
RankStatus Watchdog::status() const { return impl_->status(); }
void Watchdog::stop() { impl_->stop(); }

}  // namespace halo::dist
