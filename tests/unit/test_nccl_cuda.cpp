// NCCL on one rank and one GPU: the communicator bootstraps from MPI (a singleton run
// needs no mpiexec) and an allreduce over one rank returns its input; the gradient
// synchroniser's device path gives the gradients of a run without synchroniser (bitwise
// for f32, since a one-rank sum and a scale by 1 are exact), averages accumulated
// micro-batches, and stays within bf16 rounding with compression on. The loss scaler's
// device check finds inf on the GPU. Needs one GPU; skipped (exit 77) without.
#include "gpu_test_skip.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <memory>
#include <random>

#include "halo/dist/grad_sync.hpp"
#include "halo/dist/nccl.hpp"
#include "halo/nn/activation.hpp"
#include "halo/nn/linear.hpp"
#include "halo/nn/losses.hpp"
#include "halo/nn/model.hpp"
#include "halo/optim/loss_scaler.hpp"

using namespace halo;

namespace {

const Device gpu = Device::cuda(0);

dist::MpiSession& mpi() {
  static dist::MpiSession session;
  return session;
}

Tensor random_tensor(const Shape& s, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> v(size_t(numel(s)));
  for (auto& x : v) x = nd(rng);
  return Tensor::from_vector(v, s);
}

// x[16] -> Linear(16, 32) -> Tanh -> Linear(32, 24) -> Tanh -> Linear(24, 4) on the GPU.
struct GpuNet {
  nn::Model m;
  GpuNet() {
    m.input({16}, "x");
    m.append(std::make_shared<nn::Linear>(16, 32), "fc1");
    m.append(std::make_shared<nn::Tanh>(), "t1");
    m.append(std::make_shared<nn::Linear>(32, 24), "fc2");
    m.append(std::make_shared<nn::Tanh>(), "t2");
    m.append(std::make_shared<nn::Linear>(24, 4), "fc3");
    m.compile();
    m.init(11);
    m.to(gpu);
  }
  void backward(uint32_t seed) {
    nn::MSELoss loss;
    Tensor y = m.forward(random_tensor({8, 16}, seed).to(gpu));
    loss.forward(y, random_tensor({8, 4}, seed + 100).to(gpu));
    m.backward(loss.backward());
  }
};

std::vector<std::vector<float>> grads(nn::Model& m) {
  std::vector<std::vector<float>> g;
  for (nn::Parameter* p : m.parameters()) g.push_back(p->grad.to(Device::cpu()).to_vector<float>());
  return g;
}

}  // namespace

TEST_CASE("nccl: a one-rank communicator bootstraps from MPI and allreduces a device buffer to itself", "[nccl]") {
  mpi();
  REQUIRE(dist::nccl_available());
  dist::Communicator comm(MPI_COMM_SELF);
  dist::NcclCommunicator nccl(comm);
  REQUIRE(nccl.rank() == 0);
  REQUIRE(nccl.size() == 1);
  REQUIRE(nccl.device() == 0);
  REQUIRE(nccl.stream() != nullptr);
  for (DType dt : {DType::f32, DType::f64}) {
    Tensor host = random_tensor({1000}, 3).to(dt);
    Tensor dev = host.to(gpu);
    nccl.allreduce_sum(dev, "test allreduce");
    REQUIRE(dev.to(Device::cpu()).to_vector<double>() == host.to_vector<double>());
  }
  REQUIRE_FALSE(nccl.aborted());
}

TEST_CASE("nccl: the synchroniser's device path on one rank gives the gradients of no synchroniser", "[nccl]") {
  mpi();
  dist::Communicator comm(MPI_COMM_SELF);
  GpuNet ref, net;
  dist::GradSyncOptions o;
  o.first_bucket_bytes = 256;  // several buckets, each launched on its own event
  o.bucket_bytes = 2048;
  dist::GradientSynchronizer sync(comm, net.m.parameters(), o);
  REQUIRE(sync.on_device());
  REQUIRE_FALSE(sync.uses_progress_thread());
  REQUIRE(sync.buckets().size() >= 3);
  sync.attach(net.m);

  for (int step = 0; step < 2; ++step) {
    ref.m.zero_grad();
    net.m.zero_grad();
    ref.backward(5 + step);
    net.backward(5 + step);
    REQUIRE(sync.wait());
    REQUIRE(grads(net.m) == grads(ref.m));
  }
  for (const dist::BucketTimes& t : sync.last_times()) REQUIRE(t.end >= t.start);

  SECTION("accumulation over two micro-batches averages them") {
    dist::GradSyncOptions acc = o;
    acc.accumulation_steps = 2;
    acc.nccl = std::make_shared<dist::NcclCommunicator>(comm);
    sync.detach();
    dist::GradientSynchronizer sync2(comm, net.m.parameters(), acc);
    sync2.attach(net.m);
    ref.m.zero_grad();
    net.m.zero_grad();
    ref.backward(1);
    ref.backward(2);
    net.backward(1);
    REQUIRE_FALSE(sync2.wait());
    net.backward(2);
    REQUIRE(sync2.wait());
    auto g = grads(net.m), r = grads(ref.m);
    for (size_t k = 0; k < g.size(); ++k)
      for (size_t i = 0; i < g[k].size(); ++i) REQUIRE(g[k][i] == Approx(0.5 * r[k][i]).margin(1e-7));
  }
  SECTION("bf16 on the wire stays within bf16 rounding") {
    dist::GradSyncOptions c = o;
    c.compress_bf16 = true;
    sync.detach();
    dist::GradientSynchronizer sync3(comm, net.m.parameters(), c);
    sync3.attach(net.m);
    ref.m.zero_grad();
    net.m.zero_grad();
    ref.backward(9);
    net.backward(9);
    REQUIRE(sync3.wait());
    auto g = grads(net.m), r = grads(ref.m);
    bool any_rounded = false;
    for (size_t k = 0; k < g.size(); ++k)
      for (size_t i = 0; i < g[k].size(); ++i) {
        REQUIRE(std::abs(g[k][i] - r[k][i]) <= std::abs(r[k][i]) * 0.0040);  // 2^-8 relative
        any_rounded = any_rounded || g[k][i] != r[k][i];
      }
    REQUIRE(any_rounded);  // the wire really was bf16
  }
}

TEST_CASE("nccl: the loss scaler finds inf in GPU gradients and unscales them on the device", "[nccl][loss_scaler]") {
  nn::Parameter p;
  p.name = "p";
  p.value = Tensor::zeros({4}).to(gpu);
  p.grad = Tensor::from_vector<float>({8.f, -4.f, 2.f, 1.f}, {4}).to(gpu);
  optim::DynamicLossScaler scaler({&p}, optim::LossScalerOptions{4.0, 2.0, 0.5, 10, 1.0, 1e6});
  REQUIRE(scaler.unscale());
  REQUIRE(p.grad.to(Device::cpu()).to_vector<float>() == std::vector<float>{2.f, -1.f, 0.5f, 0.25f});
  p.grad = Tensor::from_vector<float>({1.f, std::numeric_limits<float>::infinity(), 0.f, 0.f}, {4}).to(gpu);
  REQUIRE_FALSE(optim::grads_finite({&p}));
  REQUIRE_FALSE(scaler.unscale());
}
