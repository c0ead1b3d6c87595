#include "scaling_workload.hpp"

#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <memory>

#include "halo/dist/grad_sync.hpp"
#include "halo/models/cosmoflow.hpp"
#include "halo/models/deeplabv3.hpp"
#include "halo/nn/losses.hpp"
#include "halo/optim/lamb.hpp"
#include "halo/optim/sgd.hpp"
#include "halo/util/random.hpp"
#include "halo/util/timer.hpp"

namespace halo::scaling {

namespace {

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string num(double v) {
  char b[40];
  std::snprintf(b, sizeof b, "%.6g", v);
  return b;
}

void fill_uniform(Tensor& t, uint64_t seed) {
  CounterRng rng(seed);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = float(rng.uniform(uint64_t(i)));
}

}  // namespace

int64_t default_batch(const WorkloadOptions& w) { return w.name == "deepcam" ? 2 : 4; }

std::string StepTimes::split_json() const {
  return "{\"forward_s\":" + num(median(forward)) + ",\"backward_s\":" + num(median(backward)) +
         ",\"exposed_comm_s\":" + num(median(exposed_comm)) + ",\"data_s\":" + num(median(data)) +
         ",\"optimizer_s\":" + num(median(optimizer)) + "}";
}

std::string StepTimes::profile_json(int64_t batch) const {
  std::string s = "{\"batch_per_rank\":" + std::to_string(batch) + ",\"forward_s\":" + num(median(forward)) +
                  ",\"backward_s\":" + num(median(backward)) + ",\"optimizer_s\":" + num(median(optimizer)) +
                  ",\"data_s\":" + num(median(data)) + ",\"buckets\":[";
  const size_t nb = buckets.empty() ? 0 : buckets.front().size();
  for (size_t b = 0; b < nb; ++b) {
    std::vector<double> ready, comm;
    for (const auto& step : buckets) {
      ready.push_back(step[b].ready);
      comm.push_back(step[b].end - step[b].start);
    }
    s += std::string(b ? "," : "") + "{\"bytes\":" + std::to_string(int64_t(buckets.front()[b].bytes)) + ",\"ready_s\":" + num(median(ready)) +
         ",\"allreduce_s\":" + num(median(comm)) + "}";
  }
  return s + "]}";
}

StepTimes measure(const WorkloadOptions& w, const dist::Communicator& comm, int64_t batch, int warmup, int steps,
                  train::TraceRecorder* trace) {
  const bool deepcam = w.name == "deepcam";
  std::shared_ptr<dist::SpatialGrid> grid;
  if (w.spatial_ranks() > 1) grid = std::make_shared<dist::SpatialGrid>(comm, w.spatial);
  const dist::Communicator& replicas = grid ? grid->data() : comm;
  nn::Model model = [&] {
    if (deepcam) {
      models::DeepLabV3PlusOptions o;
      o.height = w.height;
      o.width = w.width;
      o.channel_scale = w.channel_scale;
      o.middle_blocks = w.middle_blocks;
      return models::deeplabv3_plus(o);
    }
    models::CosmoFlowOptions o;
    o.input_size = w.size;
    o.dropout_seed = uint64_t(replicas.rank());
    o.spatial = grid;
    return models::cosmoflow(o);
  }();
  model.init(1);  // the same seed on every rank: identical replicas, as after a broadcast
  auto params = model.parameters();
  dist::GradientSynchronizer sync(replicas, params, {});
  sync.attach(model);

  std::unique_ptr<optim::Optimizer> opt;
  std::unique_ptr<nn::Loss> loss;
  Tensor x, y;
  if (deepcam) {
    optim::LAMBOptions lo;
    lo.lr = 1e-3;
    opt = std::make_unique<optim::LAMB>(params, lo);
    loss = std::make_unique<nn::WeightedCrossEntropy>(std::vector<double>{1.0, 20.0, 3.0});
    x = Tensor::empty({batch, 16, w.height, w.width}, DType::f32, Device::cpu(), MemoryFormat::channels_last);
    y = Tensor::empty({batch, w.height, w.width}, DType::i32, Device::cpu());
    int32_t* l = y.data<int32_t>();
    CounterRng rng(uint64_t(comm.rank()) + 101);
    for (int64_t i = 0; i < y.numel(); ++i) l[i] = int32_t(rng.uniform(uint64_t(i)) * 2.999);
  } else {
    optim::SGDOptions so;
    so.lr = 1e-4;
    so.momentum = 0.9;
    opt = std::make_unique<optim::SGD>(params, so);
    loss = std::make_unique<nn::MSELoss>();
    Shape xs{batch, 4};
    for (size_t a = 0; a < 3; ++a)  // this rank's block of the volume (all of it unsplit)
      xs.push_back(grid ? grid->block_range(int(a), w.size).size() : w.size);
    x = Tensor::empty(xs, DType::f32, Device::cpu(), MemoryFormat::channels_last);
    y = Tensor::zeros({batch, 4});
  }
  fill_uniform(x, uint64_t(comm.rank()) + 7);  // each rank its own samples (or blocks)

  StepTimes t;
  for (int s = 0; s < warmup + steps; ++s) {
    if (trace && s == warmup) trace->attach(model);
    const double t0 = now_seconds();
    model.zero_grad();
    loss->forward(model.forward(x), y);
    const double t1 = now_seconds();
    model.backward(loss->backward());
    const double t2 = now_seconds();
    sync.wait();
    const double t3 = now_seconds();
    opt->step();
    const double t4 = now_seconds();
    if (s < warmup) continue;
    if (trace) {
      trace->span("step " + std::to_string(s - warmup), "step", t0, t4);
      trace->span("gradient wait", "step", t2, t3);
      trace->span("optimizer", "step", t3, t4);
      trace->buckets(sync);
    }
    t.step.push_back(t4 - t0);
    t.forward.push_back(t1 - t0);
    t.backward.push_back(t2 - t1);
    t.exposed_comm.push_back(t3 - t2);
    t.optimizer.push_back(t4 - t3);
    t.data.push_back(0.0);  // synthetic batches are already in memory
    std::vector<StepTimes::Bucket> bs;
    const auto times = sync.last_times();
    const auto& infos = sync.buckets();
    for (size_t b = 0; b < times.size(); ++b)
      bs.push_back({double(infos[b].bytes), times[b].ready - t1, times[b].start - t1, times[b].end - t1});
    t.buckets.push_back(std::move(bs));
  }
  if (trace) trace->detach();
  return t;
}

}  // namespace halo::scaling
