// halo-scaling: scaling studies from one launch.
//
//   mpiexec -n N halo-scaling run [--workload cosmoflow|deepcam] [--mode weak|strong]
//                                 [--batch B | --global-batch G] [--ranks 1,2,4,...]
//                                 [--size S] [--height H --width W] [--warmup 2] [--steps 5]
//                                 [--spatial DxHxW] [--out scaling.jsonl]
//   halo-scaling report scaling.jsonl [--out DIR]          (table and PNG plots)
//   halo-scaling project --profile scaling.jsonl --machine machine.yaml [--nodes ...]
//   halo-scaling calibrate bench.txt [--ranks-per-node R]   (a machine description)
//
// `run` measures training steps on communicators of 1, 2, 4, ..., N ranks in turn, split
// from the launch's world (one allocation gives the whole curve); the ranks outside the
// group being measured wait in a barrier that sleeps (Communicator::idle_barrier), so they
// do not take cores from it. Each configuration appends one JSON record (docs/scaling.md):
// throughput, parallel efficiency against 1 rank (and 1 node), the step split (forward,
// backward, exposed communication, data wait, optimizer), the per-rank step-time spread,
// and the bucket schedule that
// `project` extrapolates from. With --spatial (CosmoFlow), every sample is split over a grid
// of D*H*W ranks: rank counts are multiples of it, batches and samples/s count per replica,
// and efficiency is against one grid. Last line:
//   scaling: ranks=<list> samples_per_s=<list> efficiency=<list>
// `report`, `project` and `calibrate` are in halo_scaling.py (Python: matplotlib, PyYAML), run from here.
#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "halo/dist/communicator.hpp"
#include "halo/dist/spatial_grid.hpp"
#include "halo/util/error.hpp"
#include "scaling_workload.hpp"

using namespace halo;

namespace {

struct RunOptions {
  scaling::WorkloadOptions workload;
  std::string mode = "weak";
  int64_t batch = 0;         // per rank (weak); 0: the workload's default
  int64_t global_batch = 0;  // strong: fixed over rank counts
  std::vector<int> ranks;    // empty: 1, 2, 4, ... and N
  int warmup = 2, steps = 5;
  std::string out = "scaling.jsonl";
  int ranks_per_node = 0;  // 0: nodes counted from MPI's shared-memory split
  std::string trace;       // Chrome trace of the largest rank count's timed steps
};

[[noreturn]] void usage_error(const std::string& msg) {
  throw ConfigError("halo-scaling run: " + msg + " (halo-scaling run --help)");
}

std::vector<int> parse_list(const std::string& s, const char* what) {
  std::vector<int> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t end = s.find(',', pos);
    if (end == std::string::npos) end = s.size();
    std::string item = s.substr(pos, end - pos);
    char* stop = nullptr;
    long v = std::strtol(item.c_str(), &stop, 10);
    if (item.empty() || *stop != '\0' || v < 1) usage_error(std::string(what) + " wants positive integers, got '" + s + "'");
    out.push_back(int(v));
    pos = end + 1;
  }
  return out;
}

RunOptions parse(int argc, char** argv, int world) {
  RunOptions o;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(a + " needs a value");
      return argv[++i];
    };
    auto number = [&](int64_t lo) -> int64_t {
      std::string v = value();
      char* stop = nullptr;
      long long n = std::strtoll(v.c_str(), &stop, 10);
      if (v.empty() || *stop != '\0' || n < lo) usage_error(a + " wants an integer >= " + std::to_string(lo) + ", got '" + v + "'");
      return n;
    };
    if (a == "--workload") o.workload.name = value();
    else if (a == "--mode") o.mode = value();
    else if (a == "--batch") o.batch = number(1);
    else if (a == "--global-batch") o.global_batch = number(1);
    else if (a == "--ranks") o.ranks = parse_list(value(), "--ranks");
    else if (a == "--size") o.workload.size = number(8);
    else if (a == "--height") o.workload.height = number(16);
    else if (a == "--width") o.workload.width = number(16);
    else if (a == "--channel-scale") o.workload.channel_scale = std::atof(value().c_str());
    else if (a == "--middle-blocks") o.workload.middle_blocks = int(number(0));
    else if (a == "--warmup") o.warmup = int(number(0));
    else if (a == "--steps") o.steps = int(number(1));
    else if (a == "--out") o.out = value();
    else if (a == "--ranks-per-node") o.ranks_per_node = int(number(1));
    else if (a == "--trace") o.trace = value();
    else if (a == "--spatial") o.workload.spatial = dist::parse_spatial_parts(value());
    else usage_error("unknown option '" + a + "'");
  }
  if (o.workload.name != "cosmoflow" && o.workload.name != "deepcam")
    usage_error("--workload is cosmoflow or deepcam, got '" + o.workload.name + "'");
  if (o.mode != "weak" && o.mode != "strong") usage_error("--mode is weak or strong, got '" + o.mode + "'");
  if (o.mode == "weak" && o.global_batch) usage_error("--global-batch is for --mode strong; weak scaling fixes --batch per rank");
  if (o.mode == "strong" && o.batch) usage_error("--batch is for --mode weak; strong scaling fixes --global-batch");
  const int grid = o.workload.spatial_ranks();
  if (grid > 1 && o.workload.name != "cosmoflow") usage_error("--spatial is for --workload cosmoflow");
  if (o.ranks.empty()) {
    for (int p = grid; p <= world; p *= 2) o.ranks.push_back(p);
    if (o.ranks.empty()) usage_error("--spatial needs " + std::to_string(grid) + " ranks per sample; the launch has " + std::to_string(world));
    if (o.ranks.back() != world && world % grid == 0) o.ranks.push_back(world);  // N not a power of two: measure it too
  }
  for (int p : o.ranks)
    if (p % grid) usage_error("--ranks: " + std::to_string(p) + " is not a multiple of the " + std::to_string(grid) + " ranks of --spatial");
  std::sort(o.ranks.begin(), o.ranks.end());
  o.ranks.erase(std::unique(o.ranks.begin(), o.ranks.end()), o.ranks.end());
  for (int p : o.ranks)
    if (p > world) usage_error("--ranks asks for " + std::to_string(p) + " ranks but the launch has " + std::to_string(world));
  if (o.mode == "strong") {
    if (!o.global_batch) o.global_batch = int64_t(o.ranks.back() / grid) * scaling::default_batch(o.workload);
    for (int p : o.ranks)
      if (o.global_batch % (p / grid))
        usage_error("--global-batch " + std::to_string(o.global_batch) + " does not divide over " + std::to_string(p / grid) +
                    (grid > 1 ? " replicas" : " ranks") + "; choose a multiple of every rank count in --ranks");
  }
  if (o.mode == "weak" && !o.batch) o.batch = scaling::default_batch(o.workload);
  return o;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + v[i];
  return s;
}

int run_study(int argc, char** argv) {
  dist::Communicator world(MPI_COMM_WORLD);
  const bool root = world.rank() == 0;
  RunOptions o = parse(argc, argv, world.size());
  std::ofstream out;
  if (root) {
    out.open(o.out, std::ios::app);
    if (!out) throw IOError("halo-scaling run: cannot open " + o.out + " for appending");
    std::printf("# halo-scaling run: %s, %s scaling, ranks %s, %d warm-up + %d timed steps, records to %s\n",
                o.workload.name.c_str(), o.mode.c_str(),
                join([&] { std::vector<std::string> s; for (int p : o.ranks) s.push_back(std::to_string(p)); return s; }()).c_str(),
                o.warmup, o.steps, o.out.c_str());
    std::fflush(stdout);
  }
  std::vector<std::string> col_ranks, col_sps, col_eff;
  double base_sps = 0, node_sps = 0;
  int node_ranks = 0;
  for (int p : o.ranks) {
    const bool in = world.rank() < p;
    dist::Communicator group = world.split(in ? 0 : 1, world.rank());
    if (!in) {
      world.idle_barrier();  // not spinning: the group being timed keeps the cores
      continue;
    }
    const int replicas = p / o.workload.spatial_ranks();  // p without --spatial
    const int64_t batch = o.mode == "weak" ? o.batch : o.global_batch / replicas;
    std::unique_ptr<train::TraceRecorder> trace;
    if (!o.trace.empty() && p == o.ranks.back()) trace = std::make_unique<train::TraceRecorder>(group);
    scaling::StepTimes t = scaling::measure(o.workload, group, batch, o.warmup, o.steps, trace.get());
    if (trace) trace->write(o.trace);
    // Per-rank medians to rank 0; the step of the group is the slowest rank's each step.
    double mine = median(t.step);
    std::vector<double> per_rank(size_t(p), 0.0);
    MPI_Gather(&mine, 1, MPI_DOUBLE, per_rank.data(), 1, MPI_DOUBLE, 0, group.comm());
    std::vector<double> slowest = t.step;
    MPI_Allreduce(MPI_IN_PLACE, slowest.data(), int(slowest.size()), MPI_DOUBLE, MPI_MAX, group.comm());
    const int nodes = o.ranks_per_node ? (p + o.ranks_per_node - 1) / o.ranks_per_node : group.node_count();
    if (group.rank() == 0) {
      const double step = median(slowest);
      const double sps = double(batch) * replicas / step;
      if (replicas == 1) base_sps = sps;
      if (nodes == 1) node_sps = sps, node_ranks = p;  // the largest single-node run so far
      const double eff = base_sps > 0 ? sps / (base_sps * replicas) : 0;
      std::string rec = "{\"workload\":\"" + o.workload.name + "\",\"mode\":\"" + o.mode + "\",\"ranks\":" +
                        std::to_string(p) + ",\"nodes\":" + std::to_string(nodes) + ",\"ranks_per_node\":" +
                        std::to_string(p / nodes) + ",\"batch_per_rank\":" + std::to_string(batch) +
                        ",\"global_batch\":" + std::to_string(batch * replicas) + ",\"samples_per_s\":" + fmt("%.6g", sps) +
                        ",\"efficiency\":" + (base_sps > 0 ? fmt("%.4f", eff) : "null");
      // Against one full node: only meaningful with the same ranks per node as that run.
      if (node_sps > 0 && nodes > 1 && node_ranks == p / nodes) rec += ",\"efficiency_node\":" + fmt("%.4f", sps / (node_sps * nodes));
      const auto& sp = o.workload.spatial;
      if (o.workload.spatial_ranks() > 1)
        rec += ",\"spatial\":[" + std::to_string(sp[0]) + "," + std::to_string(sp[1]) + "," + std::to_string(sp[2]) +
               "],\"replicas\":" + std::to_string(replicas);
      // step_s: the group's step (each step as long as its slowest rank; median over steps);
      // rank_step_s: each rank's own median step, and their spread (stragglers, jitter).
      std::vector<double> sorted = per_rank;
      std::sort(sorted.begin(), sorted.end());
      rec += ",\"step_s\":" + fmt("%.6g", step) + ",\"rank_step_s\":{\"min\":" + fmt("%.6g", sorted.front()) +
             ",\"median\":" + fmt("%.6g", median(sorted)) + ",\"max\":" + fmt("%.6g", sorted.back()) + "},\"rank_steps\":[";
      for (int r = 0; r < p; ++r) rec += (r ? "," : "") + fmt("%.6g", per_rank[size_t(r)]);
      rec += "],\"split\":" + t.split_json() + ",\"profile\":" + t.profile_json(batch) + "}";
      out << rec << "\n";
      out.flush();
      if (replicas != p) std::printf("scaling: %d replica(s) of %d ranks each (spatial)\n", replicas, p / replicas);
      std::printf("scaling: %d rank(s) on %d node(s), batch %lld/rank: step %.4f s (ranks %.4f..%.4f), %.1f samples/s, efficiency %s\n",
                  p, nodes, (long long)batch, step, *std::min_element(per_rank.begin(), per_rank.end()),
                  *std::max_element(per_rank.begin(), per_rank.end()), sps, base_sps > 0 ? fmt("%.3f", eff).c_str() : "n/a");
      std::fflush(stdout);
      col_ranks.push_back(std::to_string(p));
      col_sps.push_back(fmt("%.2f", sps));
      col_eff.push_back(base_sps > 0 ? fmt("%.3f", eff) : "nan");
    }
    world.idle_barrier();  // not spinning: the group being timed keeps the cores
  }
  if (root) std::printf("scaling: ranks=%s samples_per_s=%s efficiency=%s\n", join(col_ranks).c_str(), join(col_sps).c_str(), join(col_eff).c_str());
  return 0;
}

int run(int argc, char** argv) {
  dist::MpiSession mpi(&argc, &argv);
  try {
    return run_study(argc, argv);
  } catch (const std::exception& e) {
    // Every rank sees a bad option; a failure while measuring may be one rank's alone, so
    // abort rather than leave the others waiting in a collective.
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0 || !dynamic_cast<const ConfigError*>(&e)) std::fprintf(stderr, "%s\n", e.what());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 2);
    return 2;
  }
}

// `report`, `project` and `calibrate` live in the Python script installed beside this program.
int run_python(int argc, char** argv) {
  // The script beside this program (a build tree), then in ../share/halo/scaling (an
  // installed tree, wherever it was moved), then where this build installs it.
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  const std::string exe = n > 0 ? std::string(buf, size_t(n)) : std::string(argv[0]);
  const std::string here = exe.find('/') == std::string::npos ? "." : exe.substr(0, exe.rfind('/'));
  std::string script;
  for (const std::string& dir : {here, here + "/../share/halo/scaling", std::string(HALO_SCALING_SCRIPT_DIR)}) {
    script = dir + "/halo_scaling.py";
    if (access(script.c_str(), R_OK) == 0) break;
  }
  std::vector<char*> args;
  // HALO_PYTHON picks the interpreter (one with matplotlib and PyYAML) when python3 on PATH
  // is not it.
  const char* env = std::getenv("HALO_PYTHON");
  std::string py = env && *env ? env : "python3";
  args.push_back(py.data());
  args.push_back(script.data());
  for (int i = 1; i < argc; ++i) args.push_back(argv[i]);
  args.push_back(nullptr);
  execvp(py.c_str(), args.data());
  std::fprintf(stderr, "halo-scaling: cannot run %s %s: %s\n", py.c_str(), script.c_str(), std::strerror(errno));
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  const char* usage =
      "usage: mpiexec -n N halo-scaling run [--workload cosmoflow|deepcam] [--mode weak|strong]\n"
      "                 [--batch B | --global-batch G] [--ranks 1,2,4,...] [--size S (cosmoflow)]\n"
      "                 [--height H --width W --channel-scale X --middle-blocks K (deepcam)]\n"
      "                 [--warmup 2] [--steps 5] [--out scaling.jsonl] [--ranks-per-node R] [--trace FILE]\n"
      "                 [--spatial DxHxW (cosmoflow: each sample split over that grid of ranks)]\n"
      "       halo-scaling report scaling.jsonl [--out DIR]\n"
      "       halo-scaling project --profile scaling.jsonl --machine machine.yaml [--nodes 1,64,...]\n"
      "       halo-scaling calibrate bench.txt [--ranks-per-node R]  (halo-bench-allreduce output -> machine.yaml)\n"
      "  run: training steps on 1, 2, 4, ..., N ranks of one launch; one JSON record per rank count.\n"
      "  --ranks-per-node: count every R consecutive ranks as one node (emulated networks such as\n"
      "  netns-testbed.sh, where all ranks share one host); default: MPI's shared-memory split.\n"
      "  --trace: a Chrome trace (Perfetto) of the largest rank count's timed steps.\n"
      "  Last line: scaling: ranks=<list> samples_per_s=<list> efficiency=<list>\n"
      "  report, project: Python 3 with matplotlib and PyYAML (python3 on PATH, or set HALO_PYTHON).\n";
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    std::fputs(usage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  std::string cmd = argv[1];
  if (cmd == "report" || cmd == "project" || cmd == "calibrate") return run_python(argc, argv);
  if (cmd != "run") {
    std::fprintf(stderr, "halo-scaling: unknown command '%s'\n%s", cmd.c_str(), usage);
    return 2;
  }
  for (int i = 2; i < argc; ++i)
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      std::fputs(usage, stdout);
      return 0;
    }
  return run(argc, argv);
}
