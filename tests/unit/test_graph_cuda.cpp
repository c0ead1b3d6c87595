// A CosmoFlow and a DeepLabv3+ training step captured as one CUDA graph (cuda::Graph) against
// the same steps run eagerly; the graph's memory kept apart from the allocator's cache; a step that reads a
// value back refused with a clear error. (The pool's rules alone: test_graph_pool.cpp.)
#include <catch2/catch.hpp>

#include <functional>
#include <memory>
#include <vector>

#include "cuda_test_util.hpp"
#include "gpu_test_skip.hpp"
#include "halo/cuda/runtime.hpp"
#include "halo/models/cosmoflow.hpp"
#include "halo/models/deeplabv3.hpp"
#include "halo/nn/losses.hpp"
#include "halo/ops/elementwise.hpp"
#include "halo/nn/batchnorm.hpp"
#include "halo/nn/dropout.hpp"
#include "halo/optim/lamb.hpp"
#include "halo/optim/sgd.hpp"

using namespace halo;
using namespace halo_cuda_test;

namespace {

using StepFn = std::function<void(const Tensor&, const Tensor&)>;

/// The same four steps, on inputs 1, 1, 2, 1: run eagerly by `eager`, and by `graphed` as one
/// eager step (plans, algorithm searches), the capture of the next (recorded, not run) and
/// three replays with the inputs copied into the captured buffers in between, as a loader
/// would. The graph, its stream (current while this lives) and its input buffers stay for
/// more replays.
struct FourSteps {
  cuda::Stream stream{0};
  std::unique_ptr<cuda::StreamGuard> on;
  std::unique_ptr<cuda::Graph> graph;
  Tensor xin, tin;

  FourSteps(const StepFn& eager, const StepFn& graphed, const Tensor& x1, const Tensor& t1, const Tensor& x2,
            const Tensor& t2) {
    {
      cuda::Stream es(0);
      cuda::StreamGuard eager_on(es);
      for (int k : {1, 1, 2, 1}) eager(k == 1 ? x1 : x2, k == 1 ? t1 : t2);
      es.synchronize();
    }
    on = std::make_unique<cuda::StreamGuard>(stream);
    xin = x1.clone();
    tin = t1.clone();
    graphed(xin, tin);
    graph = std::make_unique<cuda::Graph>(0);
    graph->begin_capture(stream);
    graphed(xin, tin);
    graph->end_capture();
    replay_with(x1, t1);
    replay_with(x2, t2);
    replay_with(x1, t1);
    stream.synchronize();
  }
  /// Copies x and t into the captured input buffers and replays (first call: they hold x1, t1).
  void replay_with(const Tensor& x, const Tensor& t) {
    if (replays++ > 0) {
      xin.copy_(x);
      tin.copy_(t);
    }
    graph->replay(stream);
  }

 private:
  int replays = 0;
};

/// A small CosmoFlow on the GPU with SGD and MSE (no dropout: the dropout layer's replays have
/// their own test below).
struct Setup {
  nn::Model model;
  std::unique_ptr<optim::SGD> opt;
  nn::MSELoss loss;
  Setup() {
    models::CosmoFlowOptions o;
    o.input_size = 32;
    o.dropout = 0;
    model = models::cosmoflow(o);
    model.init(3);
    model.to(gpu);
    model.train();
    optim::SGDOptions so;
    so.lr = 0.02;
    so.momentum = 0.9;
    opt = std::make_unique<optim::SGD>(model.parameters(), so);
  }
  void step(const Tensor& x, const Tensor& t) {
    opt->zero_grad();
    const Tensor y = model.forward(x);
    model.backward(loss.gradient(y, t));
    opt->step();
  }
};

}  // namespace

TEST_CASE("a CosmoFlow step captured as a CUDA graph and replayed equals the eager steps") {
  for (DType dt : {DType::f32, DType::bf16}) {
    INFO(name(dt));
    const Tensor x1 = random_tensor({2, 4, 32, 32, 32}, 1, MemoryFormat::channels_last).to(dt).to(gpu);
    const Tensor x2 = random_tensor({2, 4, 32, 32, 32}, 2, MemoryFormat::channels_last).to(dt).to(gpu);
    const Tensor t1 = random_tensor({2, 4}, 3).to(gpu), t2 = random_tensor({2, 4}, 4).to(gpu);

    Setup eager, graphed;
    FourSteps run([&](const Tensor& x, const Tensor& t) { eager.step(x, t); },
                  [&](const Tensor& x, const Tensor& t) { graphed.step(x, t); }, x1, t1, x2, t2);
    CHECK(run.graph->captured());
    CHECK(run.graph->nodes() > 20);  // convolutions, pooling, dense layers, loss, SGD
    CHECK(run.graph->pool_bytes() > 0);

    // The same four steps: the same parameters, up to cuDNN's non-deterministic sums.
    check_same_parameters(graphed.model, eager.model, dt == DType::bf16 ? 1e-3 : 1e-5);
  }
}

TEST_CASE("a CUDA graph's memory is its own: other work never gets it, replays never touch theirs") {
  Setup s;
  const Tensor x = random_tensor({2, 4, 32, 32, 32}, 5, MemoryFormat::channels_last).to(gpu);
  const Tensor t = random_tensor({2, 4}, 6).to(gpu);
  cuda::Stream st(0);
  cuda::StreamGuard on(st);
  s.step(x, t);
  auto graph = std::make_unique<cuda::Graph>(0);
  graph->begin_capture(st);
  Tensor y = s.model.forward(x);  // an output that lives on after the capture
  s.model.backward(s.loss.gradient(y, t));
  graph->end_capture();
  graph->replay(st);
  st.synchronize();
  const std::vector<float> y_first = y.to_vector<float>();
  const void* y_block = y.raw_data();
  y = Tensor();  // freed after the capture: still the graph's
  // Work outside the graph, of every size the step used: none of it may land in the graph's
  // blocks, or the next replay would overwrite it.
  std::vector<Tensor> others;
  for (int64_t n : {int64_t(2 * 4), int64_t(2 * 32 * 16 * 16 * 16), int64_t(2 * 32 * 32 * 32 * 32)}) {
    others.push_back(Tensor::full({n}, 7.0, DType::f32, gpu));
    CHECK(others.back().raw_data() != y_block);
  }
  graph->replay(st);
  st.synchronize();
  for (const Tensor& o : others)
    for (float v : o.to_vector<float>()) REQUIRE(v == 7.f);
  {
    // Eager work on another stream after the capture: blocks the captured step freed went to
    // the graph (no event recorded on the capturing stream for this stream to wait for).
    cuda::Stream other(0);
    cuda::StreamGuard on_other(other);
    CHECK_NOTHROW(s.step(x, t));
    other.synchronize();
  }
  CHECK(y_first.size() == 8);  // the prediction, (2, 4)
  // Gone: its blocks serve other work again, and the allocator still works.
  graph.reset();
  Tensor z = Tensor::full({2, 4}, 1.0, DType::f32, gpu);
  CHECK(z.to_vector<float>()[7] == 1.f);
}

TEST_CASE("a capture may allocate sizes the cache has never seen") {
  // cudaMalloc inside a capture (the allocator switches the thread to relaxed capture mode),
  // and a device-to-device copy (no host wait within one GPU).
  cuda::Stream st(0);
  cuda::StreamGuard on(st);
  Tensor a = Tensor::full({1000}, 1.0, DType::f32, gpu);
  cuda::Graph graph(0);
  graph.begin_capture(st);
  Tensor fresh = Tensor::full({123457}, 2.0, DType::f32, gpu);  // a size class not cached yet
  Tensor copied = fresh.clone();
  CHECK_NOTHROW(graph.end_capture());
  copied.fill_(0.0);
  graph.replay(st);
  st.synchronize();
  CHECK(copied.to_vector<float>()[123456] == 2.f);  // the replay filled the fresh block and copied it
  CHECK(a.to_vector<float>()[999] == 1.f);
}

TEST_CASE("a capture needs its stream current on the capturing thread") {
  cuda::Stream st(0);
  cuda::Graph graph(0);
  CHECK_THROWS_WITH(graph.begin_capture(st), Catch::Contains("StreamGuard"));
}

TEST_CASE("a captured step that reads a value back is refused, naming why, and the device stays usable") {
  Setup s;
  const Tensor x = random_tensor({2, 4, 32, 32, 32}, 7, MemoryFormat::channels_last).to(gpu);
  const Tensor t = random_tensor({2, 4}, 8).to(gpu);
  cuda::Stream st(0);
  cuda::StreamGuard on(st);
  s.step(x, t);
  {
    cuda::Graph graph(0);
    graph.begin_capture(st);
    // MSELoss::forward reads the loss back to the host: not capturable.
    CHECK_THROWS(s.loss.forward(s.model.forward(x), t));
  }  // the graph ends the broken capture and gives its blocks back
  s.model.backward(s.loss.gradient(s.model.forward(x), t));  // eager work goes on
  st.synchronize();
  cuda::Graph again(0);
  again.begin_capture(st);
  s.step(x, t);
  CHECK_NOTHROW(again.end_capture());
}

TEST_CASE("a DeepLabv3+ step with LAMB and the weighted cross-entropy, captured, equals the eager steps") {
  // DeepCAM's step on the device path that needs no host: BatchNorm's statistics, LAMB's
  // trust ratios and the cross-entropy's normaliser all formed on the GPU.
  models::DeepLabV3PlusOptions o;
  o.height = 32;
  o.width = 48;
  o.channel_scale = 0.0625;
  o.middle_blocks = 1;
  struct Deep {
    nn::Model model;
    std::unique_ptr<optim::LAMB> opt;
    nn::WeightedCrossEntropy loss{std::vector<double>{1.0, 20.0, 3.0}};
    explicit Deep(const models::DeepLabV3PlusOptions& o) {
      model = models::deeplabv3_plus(o);
      model.init(9);
      model.to(gpu);
      model.train();
      optim::LAMBOptions lo;
      lo.lr = 1e-3;
      lo.weight_decay = 1e-2;
      // Bias correction depends on the step count, a host value a graph freezes (as it does
      // a schedule's learning rate): without it a replay equals an eager step.
      lo.bias_correction = false;
      opt = std::make_unique<optim::LAMB>(model.parameters(), lo);
    }
    void step(const Tensor& x, const Tensor& t) {
      opt->zero_grad();
      const Tensor y = model.forward(x);
      model.backward(loss.gradient(y, t));
      opt->step();
    }
  };
  const Tensor x1 = random_tensor({2, 16, 32, 48}, 60, MemoryFormat::channels_last).to(gpu);
  const Tensor x2 = random_tensor({2, 16, 32, 48}, 61, MemoryFormat::channels_last).to(gpu);
  Tensor l1 = Tensor::empty({2, 32, 48}, DType::i32), l2 = Tensor::empty({2, 32, 48}, DType::i32);
  for (int64_t i = 0; i < l1.numel(); ++i) {
    l1.data<int32_t>()[i] = int32_t(((i % 48) / 16 + (i / 48 % 32) / 11) % 3);
    l2.data<int32_t>()[i] = int32_t((i / 7) % 3);
  }
  const Tensor t1 = l1.to(gpu), t2 = l2.to(gpu);

  Deep eager(o), graphed(o);
  FourSteps run([&](const Tensor& x, const Tensor& t) { eager.step(x, t); },
                [&](const Tensor& x, const Tensor& t) { graphed.step(x, t); }, x1, t1, x2, t2);
  CHECK_NOTHROW(graphed.loss.check_labels());
  // What the four steps changed, against the eager run's change (the initial values would
  // hide an error in the updates); f64 atomics in the sums make the order of additions vary.
  Deep start(o);
  const auto pe = eager.model.parameters(), pg = graphed.model.parameters(), p0 = start.model.parameters();
  REQUIRE(pe.size() == pg.size());
  for (size_t i = 0; i < pe.size(); ++i) {
    INFO(pe[i]->name);
    Tensor de = pe[i]->value.clone(), dg = pg[i]->value.clone();
    ops::axpy_(de, -1.0, p0[i]->value);
    ops::axpy_(dg, -1.0, p0[i]->value);
    CHECK(rel_err(dg, de) < 1e-3);
  }
  // The BatchNorm running statistics the replays updated on the device.
  for (const char* name : {"entry.conv1.bn", "block1.skip.bn", "decoder.up3.bn"}) {
    INFO(name);
    auto& be = dynamic_cast<nn::BatchNormNd&>(eager.model.layer(name));
    auto& bg = dynamic_cast<nn::BatchNormNd&>(graphed.model.layer(name));
    CHECK(rel_err(bg.running_mean(), be.running_mean()) < 1e-4);
    CHECK(rel_err(bg.running_var(), be.running_var()) < 1e-4);
  }
  // A replay fed a bad label: reported by the next check, not lost.
  Tensor bad = l1.clone();
  bad.data<int32_t>()[5] = 9;
  run.replay_with(x1, bad.to(gpu));
  run.stream.synchronize();
  CHECK_THROWS_WITH(graphed.loss.check_labels(), Catch::Contains("flat position 5"));
  CHECK_NOTHROW(graphed.loss.check_labels());
}

TEST_CASE("a dropout layer in a CUDA graph draws each replay's mask as its eager steps do") {
  // The mask's key is a replay value (cuda::replay_value): fetched from the layer before
  // every replay, so the step advances per replay, not at the capture.
  for (DType dt : {DType::f32, DType::bf16}) {
    INFO(name(dt));
    const Tensor x = Tensor::full({2, 8, 4, 4, 4}, 1.0, DType::f32, gpu).to(dt);
    nn::Dropout eager(0.5, 11), graphed(0.5, 11);
    eager.set_training(true);
    graphed.set_training(true);
    std::vector<std::vector<float>> masks;
    for (int k = 0; k < 3; ++k) masks.push_back(eager.forward({x}).to(DType::f32).to_vector<float>());
    CHECK(masks[0] != masks[1]);

    cuda::Stream st(0);
    cuda::StreamGuard on(st);
    const Tensor xin = x.clone();
    cuda::Graph graph(0);
    graph.begin_capture(st);
    const Tensor y = graphed.forward({xin});
    graph.end_capture();
    CHECK(graphed.step() == 0);  // recorded, not run
    for (int k = 0; k < 3; ++k) {
      INFO("replay " << k + 1);
      graph.replay(st);
      st.synchronize();
      CHECK(graphed.step() == uint64_t(k + 1));
      CHECK(y.to(DType::f32).to_vector<float>() == masks[size_t(k)]);
    }
  }
}
