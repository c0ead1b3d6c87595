#include "halo/train/trace.hpp"

#include <mpi.h>

#include <cstdio>
#include <fstream>
#include <mutex>
#include <vector>

#include "halo/dist/grad_sync.hpp"
#include "halo/nn/model.hpp"
#include "halo/util/error.hpp"
#include "halo/util/log.hpp"
#include "halo/util/timer.hpp"

namespace halo::train {

namespace {

enum Track : int { kCompute = 0, kAllreduce = 1 };

struct Event {
  std::string name;
  const char* category;
  double t0, t1;  // seconds since time zero; t1 < 0: an instant
  int track;
};

void append_json_string(std::string& out, const std::string& s) {
  out += '"';
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      out += b;
    } else {
      out += c;
    }
  }
  out += '"';
}

}  // namespace

struct TraceRecorder::Impl {
  dist::Communicator comm;
  size_t max_events;
  double zero = 0;
  std::vector<Event> events;
  size_t dropped = 0;
  nn::Model* model = nullptr;
  std::mutex mu;  // layer timers and spans may come from different threads

  void add(Event e) {
    std::lock_guard<std::mutex> lock(mu);
    if (events.size() >= max_events) {
      ++dropped;
      return;
    }
    events.push_back(std::move(e));
  }
};

TraceRecorder::TraceRecorder(dist::Communicator comm, size_t max_events) : impl_(std::make_unique<Impl>()) {
  impl_->comm = std::move(comm);
  impl_->max_events = max_events;
  impl_->events.reserve(std::min<size_t>(max_events, 1 << 16));
  impl_->comm.barrier("trace time zero");
  impl_->zero = now_seconds();
}

TraceRecorder::~TraceRecorder() { detach(); }

void TraceRecorder::attach(nn::Model& model) {
  detach();
  impl_->model = &model;
  Impl* impl = impl_.get();
  // The timer is called right after the layer returns, so "now" is the layer's end.
  model.set_layer_timer([impl](const std::string& node, bool backward, double seconds) {
    const double end = now_seconds() - impl->zero;
    impl->add({node + (backward ? " backward" : " forward"), backward ? "backward" : "forward", end - seconds, end,
               kCompute});
  });
}

void TraceRecorder::detach() {
  if (impl_ && impl_->model) {
    impl_->model->set_layer_timer({});
    impl_->model = nullptr;
  }
}

void TraceRecorder::span(const std::string& name, const char* category, double t0, double t1) {
  impl_->add({name, category, t0 - impl_->zero, t1 - impl_->zero, kCompute});
}

void TraceRecorder::buckets(const dist::GradientSynchronizer& sync) {
  const auto times = sync.last_times();
  const auto& infos = sync.buckets();
  for (size_t b = 0; b < times.size() && b < infos.size(); ++b) {
    const std::string name = "bucket " + std::to_string(b);
    impl_->add({name + " ready", "bucket", times[b].ready - impl_->zero, -1, kAllreduce});
    impl_->add({name + " (" + std::to_string(infos[b].bytes) + " B)", "allreduce", times[b].start - impl_->zero,
                times[b].end - impl_->zero, kAllreduce});
  }
}

size_t TraceRecorder::events() const { return impl_->events.size(); }
size_t TraceRecorder::dropped() const { return impl_->dropped; }

void TraceRecorder::write(const std::string& path) const {
  const int rank = impl_->comm.rank(), size = impl_->comm.size();
  // This rank's events as JSON objects, each followed by a comma.
  std::string mine;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    mine.reserve(impl_->events.size() * 96);
    char b[160];
    std::snprintf(b, sizeof b, "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%d,\"args\":{\"name\":\"rank %d\"}},\n",
                  rank, rank);
    mine += b;
    std::snprintf(b, sizeof b, "{\"name\":\"process_sort_index\",\"ph\":\"M\",\"pid\":%d,\"args\":{\"sort_index\":%d}},\n",
                  rank, rank);
    mine += b;
    const char* tracks[] = {"compute", "allreduce"};
    for (int t = 0; t < 2; ++t) {
      std::snprintf(b, sizeof b, "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":%d,\"args\":{\"name\":\"%s\"}},\n",
                    rank, t, tracks[t]);
      mine += b;
    }
    if (impl_->dropped) {
      std::snprintf(b, sizeof b,
                    "{\"name\":\"%zu events dropped (max_events)\",\"ph\":\"i\",\"s\":\"p\",\"pid\":%d,\"tid\":0,\"ts\":0},\n",
                    impl_->dropped, rank);
      mine += b;
    }
    for (const Event& e : impl_->events) {
      mine += "{\"name\":";
      append_json_string(mine, e.name);
      if (e.t1 < 0) {
        std::snprintf(b, sizeof b, ",\"cat\":\"%s\",\"ph\":\"i\",\"s\":\"t\",\"pid\":%d,\"tid\":%d,\"ts\":%.3f},\n",
                      e.category, rank, e.track, e.t0 * 1e6);
      } else {
        std::snprintf(b, sizeof b, ",\"cat\":\"%s\",\"ph\":\"X\",\"pid\":%d,\"tid\":%d,\"ts\":%.3f,\"dur\":%.3f},\n",
                      e.category, rank, e.track, e.t0 * 1e6, (e.t1 - e.t0) * 1e6);
      }
      mine += b;
    }
  }
  // Gather to rank 0, sizes first. MPI counts are ints: every rank learns whether the merged
  // trace fits before anyone sends, so a refusal reaches all ranks alike.
  const long long n_local = (long long)mine.size();
  long long total_bytes = n_local;
  MPI_Allreduce(MPI_IN_PLACE, &total_bytes, 1, MPI_LONG_LONG, MPI_SUM, impl_->comm.comm());
  if (total_bytes >= (1LL << 31) - 1)
    throw Error(str("TraceRecorder::write: the merged trace of ", size, " ranks would be ", total_bytes,
                    " bytes (at most 2 GiB); lower max_events or trace fewer steps"));
  int n = int(n_local);
  std::vector<int> counts(size_t(rank == 0 ? size : 0)), displs(counts.size());
  MPI_Gather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, impl_->comm.comm());
  std::string all;
  if (rank == 0) {
    size_t total = 0;
    for (int r = 0; r < size; ++r) {
      displs[size_t(r)] = int(total);
      total += size_t(counts[size_t(r)]);
    }
    all.resize(total);
  }
  MPI_Gatherv(mine.data(), n, MPI_CHAR, rank == 0 ? &all[0] : nullptr, counts.data(), displs.data(), MPI_CHAR, 0,
              impl_->comm.comm());
  int ok = 1;
  std::string why;
  if (rank == 0) {
    const std::string tmp = path + ".tmp";
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!all.empty() && all[all.size() - 2] == ',') all.erase(all.size() - 2, 1);  // the last comma
    f << "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n" << all << "]}\n";
    f.close();
    if (!f || std::rename(tmp.c_str(), path.c_str()) != 0) {
      ok = 0;
      why = "cannot write the trace " + path;
      std::remove(tmp.c_str());
    }
  }
  MPI_Bcast(&ok, 1, MPI_INT, 0, impl_->comm.comm());
  if (!ok) throw IOError(rank == 0 ? why : "rank 0 could not write the trace " + path);
}

TraceCallback::TraceCallback(std::string path, dist::Communicator comm, nn::Model& model,
                             const dist::GradientSynchronizer* sync)
    : path_(std::move(path)), comm_(std::move(comm)), model_(model), sync_(sync) {}

TraceCallback::~TraceCallback() = default;

void TraceCallback::on_fit_start(const FitState&) {
  recorder_ = std::make_unique<TraceRecorder>(comm_);
  recorder_->attach(model_);
}

void TraceCallback::on_step_end(const FitState&, const StepResult& r) {
  if (!recorder_) return;
  // The phases in the order run_step takes them: data, step guard, forward (with the loss),
  // backward, gradient wait, optimizer.
  const StepTimings& t = r.timings;
  double at = t.start;
  auto phase = [&](const char* name, double seconds) {
    if (seconds > 0) recorder_->span(name, "step", at, at + seconds);
    at += seconds;
  };
  recorder_->span(str("step ", r.global_step), "step", t.start,
                  t.start + t.data_s + t.comm_s + t.forward_s + t.backward_s + t.optimizer_s);
  phase("data wait", t.data_s);
  phase("step guard", t.guard_s);
  phase("forward", t.forward_s);
  phase("backward", t.backward_s);
  phase("gradient wait", t.comm_s - t.guard_s);
  phase("optimizer", t.optimizer_s);
  if (sync_) recorder_->buckets(*sync_);
  ++unwritten_;
}

void TraceCallback::on_validation_start(const FitState&) { val_start_ = now_seconds(); }

void TraceCallback::on_validation_end(const FitState& s, const std::map<std::string, double>&) {
  if (!recorder_) return;
  recorder_->span(str("validation (epoch ", s.epoch + 1, ")"), "validation", val_start_, now_seconds());
  ++unwritten_;
}

void TraceCallback::on_checkpoint(const FitState&, double start, double end) {
  if (!recorder_) return;
  recorder_->span("checkpoint", "checkpoint", start, end);
  recorder_->write(path_);
  unwritten_ = 0;
}

void TraceCallback::on_fit_end(const FitState& s, const FitResult&) {
  if (!recorder_) return;
  // The same count on every rank (hooks run in step), so all skip or all write: after a
  // final checkpoint the file already holds everything.
  if (unwritten_ > 0) recorder_->write(path_);
  unwritten_ = 0;
  recorder_->detach();
  if (s.rank0)
    log::info(s.name, ": trace '", path_, "' (", s.ranks, " ranks, ", recorder_->events(), " events on rank 0",
              recorder_->dropped() ? str(", ", recorder_->dropped(), " dropped over max_events") : std::string(),
              "): open it in ui.perfetto.dev or chrome://tracing");
}

}  // namespace halo::train
