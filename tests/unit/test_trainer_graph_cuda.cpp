// The Trainer's CUDA-graph steps (TrainerOptions::cuda_graph) against its eager steps: the
// same losses, parameters and dropout positions over steps on two batch shapes (a shape's
// first step eager, then a capture and replays), the refusals, and a model whose step cannot
// be captured stopped with a clear error. One process: the gradient allreduce is NCCL's on a
// communicator of one rank, captured like any other.
#include <catch2/catch.hpp>
#include <mpi.h>

#include <memory>
#include <vector>

#include "cuda_test_util.hpp"
#include "gpu_test_skip.hpp"
#include "halo/dist/communicator.hpp"
#include "halo/models/cosmoflow.hpp"
#include "halo/nn/conv.hpp"
#include "halo/nn/dropout.hpp"
#include "halo/nn/losses.hpp"
#include "halo/optim/sgd.hpp"
#include "halo/train/trainer.hpp"

using namespace halo;
using namespace halo_cuda_test;

namespace {

dist::Communicator self() {
  static dist::MpiSession mpi;
  return dist::Communicator(MPI_COMM_SELF);
}

train::TrainerOptions options(bool graph, DType precision) {
  train::TrainerOptions o;
  o.device = gpu;
  o.progress = false;
  o.epoch_summary = false;
  o.checkpoint_at_end = false;
  o.precision = precision;
  o.cuda_graph = graph;
  return o;
}

// A small CosmoFlow with its dropout layers on, SGD with momentum and a falling learning
// rate (a host value: the optimizer runs after the replay), MSE.
struct Run {
  nn::Model model;
  std::unique_ptr<optim::SGD> opt;
  nn::MSELoss loss;
  std::unique_ptr<train::Trainer> trainer;
  Run(bool graph, DType precision) {
    models::CosmoFlowOptions co;
    co.input_size = 16;
    co.conv_layers = 3;
    co.dropout = 0.3;
    co.dropout_seed = 5;
    model = models::cosmoflow(co);
    model.init(3);
    model.to(gpu);
    optim::SGDOptions so;
    so.lr = 0.02;
    so.momentum = 0.9;
    opt = std::make_unique<optim::SGD>(model.parameters(), so);
    opt->set_schedule([](int64_t step) { return 0.02 / double(1 + step); });
    trainer = std::make_unique<train::Trainer>(self(), model, *opt, loss, options(graph, precision));
  }
  std::vector<uint64_t> dropout_steps() {
    std::vector<uint64_t> s;
    for (const auto& node : model.nodes())
      if (auto* d = dynamic_cast<nn::Dropout*>(node.layer.get())) s.push_back(d->step());
    return s;
  }
};

// A layer that copies its input to the host: fine eagerly, refused by a capture.
class ReadsBack final : public nn::Layer {
 public:
  std::string type() const override { return "ReadsBack"; }
  std::optional<std::vector<ops::OpFamily>> op_families() const override {
    return std::vector<ops::OpFamily>{ops::OpFamily::elementwise};
  }
  Shape output_shape(const std::vector<Shape>& inputs) const override { return inputs.at(0); }
  using Layer::forward;
  Tensor forward(const std::vector<Tensor>& inputs) override {
    (void)inputs.at(0).to(Device::cpu());
    return inputs[0];
  }
  std::vector<Tensor> backward(const Tensor& grad_output) override { return {grad_output}; }
};

}  // namespace

TEST_CASE("the trainer's CUDA-graph steps equal its eager steps, dropout and two batch shapes included") {
  for (DType dt : {DType::f32, DType::bf16}) {
    INFO(name(dt));
    Run eager(false, dt), graphed(true, dt);
    // Batches of 4 and 2: 4, 4, 4, 2, 4, 2, 2, 4 (each shape: eager, captured and replayed, ...).
    std::vector<Tensor> xs, ys;
    for (int k = 0; k < 8; ++k) {
      const int64_t n = (k == 3 || k == 5 || k == 6) ? 2 : 4;
      xs.push_back(random_tensor({n, 4, 16, 16, 16}, uint32_t(10 + k)));
      ys.push_back(random_tensor({n, 4}, uint32_t(50 + k)));
    }
    int replays = 0;
    for (size_t k = 0; k < xs.size(); ++k) {
      INFO("step " << k + 1);
      const train::StepResult re = eager.trainer->step(xs[k], ys[k]);
      const train::StepResult rg = graphed.trainer->step(xs[k], ys[k]);
      CHECK_FALSE(re.graph_replay);
      replays += rg.graph_replay;
      // A replay is one compute phase (the device's phase times: the last test case).
      CHECK(rg.timings.forward_s > 0);
      if (rg.graph_replay) CHECK(rg.timings.backward_s < 1e-4);  // two events back to back
      CHECK(rg.updated);
      CHECK(rg.loss == Approx(re.loss).epsilon(dt == DType::bf16 ? 2e-2 : 1e-4));
    }
    // Batch 4: step 1 eager, 2 captured and replayed, 3, 5 and 8 replayed. Batch 2: step 4
    // eager; step 6 eager again (step 5 of the other shape ran since, so the layers' plans
    // are not batch 2's), 7 captured and replayed.
    CHECK(replays == 5);
    CHECK(graphed.dropout_steps() == eager.dropout_steps());
    CHECK(graphed.dropout_steps().front() == 8);
    CHECK(graphed.trainer->global_step() == 8);
    check_same_parameters(graphed.model, eager.model, dt == DType::bf16 ? 2e-3 : 1e-5);
  }
}

TEST_CASE("training.cuda_graph refuses loss scaling and gradient accumulation, and a step that reads back") {
  nn::Model m;
  m.input({4, 8, 8, 8});
  m.append(std::make_shared<ReadsBack>(), "reads_back");
  m.append(std::make_shared<nn::Conv3d>(4, 2, 3), "conv");
  m.compile();
  m.init(1);
  m.to(gpu);
  optim::SGD sgd(m.parameters(), optim::SGDOptions{});
  nn::MSELoss loss;
  train::TrainerOptions o = options(true, DType::f32);
  o.loss_scaling = true;
  CHECK_THROWS_WITH(train::Trainer(self(), m, sgd, loss, o), Catch::Contains("loss_scaling"));
  o.loss_scaling = false;
  o.grad_sync.accumulation_steps = 2;
  CHECK_THROWS_WITH(train::Trainer(self(), m, sgd, loss, o), Catch::Contains("accumulation"));
  o.grad_sync.accumulation_steps = 1;

  train::Trainer t(self(), m, sgd, loss, o);
  const Tensor x = random_tensor({2, 4, 8, 8, 8}, 1), y = random_tensor({2, 2, 6, 6, 6}, 2);
  CHECK_NOTHROW(t.step(x, y));  // the first step of a shape runs eagerly
  CHECK_THROWS_AS(t.step(x, y), ConfigError);
  try {
    t.step(x, y);
    FAIL("the capture of a step that reads back was not refused");
  } catch (const ConfigError& e) {
    CHECK_THAT(e.what(), Catch::Contains("cannot be captured as a CUDA graph") &&
                             Catch::Contains("training.cuda_graph=false"));
  }
}

TEST_CASE("on a GPU the trainer's phase times are the device's: backward is not counted as gradient wait") {
  // A backward heavy enough on the GPU (CosmoFlow at 64^3, batch 8): timed by the host, which
  // only queues its kernels, it would be short and the gradient wait after it long; on the
  // device the wait for the (one-rank) allreduce is a small part of it.
  nn::Model model;
  models::CosmoFlowOptions co;
  co.input_size = 64;
  co.dropout = 0;
  model = models::cosmoflow(co);
  model.init(3);
  model.to(gpu);
  optim::SGD opt(model.parameters(), optim::SGDOptions{});
  nn::MSELoss loss;
  train::Trainer t(self(), model, opt, loss, options(false, DType::f32));
  const Tensor x = random_tensor({8, 4, 64, 64, 64}, 7), y = random_tensor({8, 4}, 8);
  train::StepResult r;
  for (int k = 0; k < 3; ++k) r = t.step(x, y);  // the first ones search cuDNN's algorithms
  const double wait = r.timings.comm_s - r.timings.guard_s;
  INFO("forward " << r.timings.forward_s << " s, backward " << r.timings.backward_s << " s, wait " << wait
                  << " s, optimizer " << r.timings.optimizer_s << " s");
  CHECK(r.timings.forward_s > 0);
  CHECK(r.timings.optimizer_s > 0);
  CHECK(r.timings.backward_s > 2 * wait);
}
