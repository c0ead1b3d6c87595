#include "halo/dist/step_guard.hpp"

#include <map>
#include <sstream>

#include "halo/util/error.hpp"
#include "halo/util/timer.hpp"

namespace halo::dist {
namespace {

constexpr int kFields = 7;

void pack(const StepTag& t, uint64_t* v) {
  v[0] = uint64_t(t.epoch);
  v[1] = uint64_t(t.step);
  v[2] = uint64_t(t.steps_per_epoch);
  v[3] = t.has_batch ? 1 : 0;
  v[4] = uint64_t(t.buckets);
  v[5] = uint64_t(t.elements);
  v[6] = t.layout;
}

StepTag unpack(const uint64_t* v) {
  StepTag t;
  t.epoch = int64_t(v[0]);
  t.step = int64_t(v[1]);
  t.steps_per_epoch = int64_t(v[2]);
  t.has_batch = v[3] != 0;
  t.buckets = int64_t(v[4]);
  t.elements = int64_t(v[5]);
  t.layout = v[6];
  return t;
}

std::string where(const StepTag& t) {
  std::ostringstream os;
  if (t.has_batch)
    os << "at step " << t.step + 1 << " of epoch " << t.epoch + 1;
  else
    os << "done with epoch " << t.epoch + 1 << " after " << t.step << (t.step == 1 ? " step" : " steps");
  os << " (its epoch has " << t.steps_per_epoch << (t.steps_per_epoch == 1 ? " step, " : " steps, ") << t.buckets
     << (t.buckets == 1 ? " gradient bucket of " : " gradient buckets of ") << t.elements << " elements, layout hash "
     << std::hex << t.layout << std::dec << ")";
  return os.str();
}

}  // namespace

std::string describe_step_mismatch(const std::vector<StepTag>& per_rank, const std::string& who) {
  // Group the ranks by identical tag (thousands of ranks fall into a few groups).
  std::map<std::vector<uint64_t>, std::vector<int>> groups;
  std::vector<std::vector<uint64_t>> order;
  for (size_t r = 0; r < per_rank.size(); ++r) {
    std::vector<uint64_t> k(kFields);
    pack(per_rank[r], k.data());
    auto& g = groups[k];
    if (g.empty()) order.push_back(k);
    g.push_back(int(r));
  }
  std::ostringstream os;
  os << who << ": the ranks are not at the same training step, so their next collectives would not match "
     << "(MPI would truncate a message or write past a buffer): ";
  for (size_t i = 0; i < order.size(); ++i) {
    const auto& ranks = groups[order[i]];
    if (i) os << "; ";
    os << (ranks.size() == 1 ? "rank " : "ranks ") << format_rank_list(ranks) << ": " << where(unpack(order[i].data()));
  }
  static const char* const names[kFields] = {"epoch", "step", "steps per epoch", "has a batch",
                                             "gradient buckets", "gradient elements", "bucket layout"};
  std::string differ;
  for (int f = 0; f < kFields; ++f) {
    bool same = true;
    for (const auto& k : order) same = same && k[size_t(f)] == order.front()[size_t(f)];
    if (!same) differ += std::string(differ.empty() ? "" : ", ") + names[f];
  }
  os << "; they differ in: " << (differ.empty() ? "nothing" : differ)
     << ". Every rank must run the same steps: use one DataLoader configuration (sample count, batch size, "
        "drop_last_batch) and one model on every rank.";
  return os.str();
}

StepGuard::StepGuard(Communicator comm, std::string who) : comm_(std::move(comm)), who_(std::move(who)) {}

void StepGuard::check(const StepTag& mine) {
  ++checks_;
  if (comm_.size() < 2) return;
  Stopwatch sw;
  // Min and max of every field in one fixed-size call: max as the complement of the min of
  // the complements. The call is the same on every rank whatever the tags hold, so it
  // matches even when the ranks disagree — which is the point.
  uint64_t v[2 * kFields];
  pack(mine, v);
  for (int f = 0; f < kFields; ++f) v[kFields + f] = ~v[f];
  {
    Watchdog::Guard g(comm_.watchdog(), str(who_, " step guard (epoch ", mine.epoch + 1, ", step ", mine.step + 1, ")"));
    MPI_Allreduce(MPI_IN_PLACE, v, 2 * kFields, MPI_UINT64_T, MPI_MIN, comm_.comm());
  }
  bool same = true;
  for (int f = 0; f < kFields; ++f) same = same && v[f] == ~v[kFields + f];
  seconds_ += sw.seconds();
  if (same) return;
  // Every rank saw the difference, so every rank takes part in naming the culprits.
  std::vector<uint64_t> all(size_t(kFields) * size_t(comm_.size()));
  uint64_t packed[kFields];
  pack(mine, packed);
  {
    Watchdog::Guard g(comm_.watchdog(), who_ + " step guard: gathering the ranks' steps");
    MPI_Allgather(packed, kFields, MPI_UINT64_T, all.data(), kFields, MPI_UINT64_T, comm_.comm());
  }
  std::vector<StepTag> tags;
  for (int r = 0; r < comm_.size(); ++r) tags.push_back(unpack(all.data() + size_t(r) * kFields));
  throw DistError(describe_step_mismatch(tags, who_));
}

}  // namespace halo::dist
