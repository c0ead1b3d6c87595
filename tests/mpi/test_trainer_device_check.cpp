// The trainer's start-up refusals for a GPU run, on every rank and before any collective or
// GPU work: a model with a layer that cannot run there (listed by name and type), and a
// model left on another device than TrainerOptions::device; training.cuda_graph off a GPU;
// bf16 convolutions on a CPU without oneDNN's bf16 kernels. None touches a GPU, so they are
// checked in every build.
#include <catch2/catch.hpp>
#include <mpi.h>

#include <filesystem>
#include <unistd.h>

#include "halo/data/loader.hpp"
#include "halo/data/synthetic.hpp"
#include "halo/nn/activation.hpp"
#include "halo/nn/conv.hpp"
#include "halo/nn/linear.hpp"
#include "halo/nn/losses.hpp"
#include "halo/nn/model.hpp"
#include "halo/ops/registry.hpp"
#include "halo/optim/sgd.hpp"
#include "halo/train/device_support.hpp"
#include "halo/train/trainer.hpp"
#include "mpi_world.hpp"

using namespace halo;
namespace fs = std::filesystem;

namespace {

// Without op families declared it is taken to run on the CPU only; with them, wherever they
// have kernels.
class Unported final : public nn::Layer {
 public:
  explicit Unported(bool declares = false) : declares_(declares) {}
  std::string type() const override { return "Unported"; }
  std::optional<std::vector<ops::OpFamily>> op_families() const override {
    if (!declares_) return std::nullopt;
    return std::vector<ops::OpFamily>{ops::OpFamily::elementwise};
  }
  Shape output_shape(const std::vector<Shape>& inputs) const override { return inputs.at(0); }
  using Layer::forward;
  Tensor forward(const std::vector<Tensor>& inputs) override { return inputs.at(0); }
  std::vector<Tensor> backward(const Tensor& grad_output) override { return {grad_output}; }

 private:
  bool declares_;
};

// One 3x3 convolution "conv" on (4, 8, 8) inputs, compiled and initialised, on the CPU.
nn::Model one_conv() {
  nn::Model m;
  m.input({4, 8, 8});
  m.append(std::make_shared<nn::Conv2d>(4, 2, 3), "conv");
  m.compile();
  m.init(1);
  return m;
}

std::string shared_dir() {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  const std::string dir = halo::test::shared_temp_path("halo-mpi-devcheck");
  if (rank == 0) {
    data::GenerateOptions g;
    g.format = "deepcam";
    g.out_dir = dir;
    g.samples = 8;
    g.height = 8;
    g.width = 8;
    data::generate(g);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  return dir;
}

}  // namespace

TEST_CASE("trainer refuses a GPU run at construction: layers without CUDA kernels, model on another device") {
  const std::string dir = shared_dir();
  auto ds = std::make_shared<data::H5Dataset>(data::list_files(dir), data::deepcam());
  data::LoaderOptions lo;
  lo.batch_size = 1;
  data::DataLoader loader(ds, lo);
  dist::Communicator comm(MPI_COMM_WORLD);
  nn::MSELoss loss;

  auto build = [](bool declares) {
    nn::Model m;
    m.input({16, 8, 8});
    nn::ConvOptions same;
    same.padding = 1;
    m.append(std::make_shared<nn::Conv2d>(16, 3, 3, same), "conv");
    m.append(std::make_shared<Unported>(declares), "odd_one");
    m.append(std::make_shared<nn::ReLU>(), "relu");
    m.compile();
    m.init(1);
    return m;
  };
  nn::Model m = build(false);
  optim::SGD sgd(m.parameters(), optim::SGDOptions{});

  train::TrainerOptions o;
  o.device = Device::cuda(0);
  o.progress = false;
  CHECK_THROWS_WITH(train::Trainer(comm, m, sgd, loss, loader, nullptr, nullptr, o),
                    Catch::Contains("odd_one (Unported)") && !Catch::Contains("conv (Conv2d)"));

  nn::Model declared = build(true);
  optim::SGD sgd2(declared.parameters(), optim::SGDOptions{});
  if (ops::has_backend(DeviceKind::cuda))
    CHECK_THROWS_WITH(train::Trainer(comm, declared, sgd2, loss, loader, nullptr, nullptr, o),
                      Catch::Contains("parameter 'conv/weight' is on cpu") && Catch::Contains("model.to(device)"));
  else
    CHECK_THROWS_WITH(train::Trainer(comm, declared, sgd2, loss, loader, nullptr, nullptr, o),
                      Catch::Contains("no CUDA support"));

  MPI_Barrier(MPI_COMM_WORLD);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank == 0) fs::remove_all(dir);
}

TEST_CASE("trainer refuses training.cuda_graph off a GPU, naming the setting") {
  dist::Communicator comm(MPI_COMM_WORLD);
  nn::Model m = one_conv();
  optim::SGD sgd(m.parameters(), optim::SGDOptions{});
  nn::MSELoss loss;
  train::TrainerOptions o;
  o.progress = false;
  o.cuda_graph = true;  // on the CPU
  CHECK_THROWS_AS(train::Trainer(comm, m, sgd, loss, o), ConfigError);
  CHECK_THROWS_WITH(train::Trainer(comm, m, sgd, loss, o),
                    Catch::Contains("training.cuda_graph needs a GPU") && Catch::Contains("device is cpu"));
  o.cuda_graph = false;
  CHECK_NOTHROW(train::Trainer(comm, m, sgd, loss, o));
}

TEST_CASE("trainer refuses bf16 convolutions on a CPU without bf16 kernels, naming the layer; takes them elsewhere") {
  dist::Communicator comm(MPI_COMM_WORLD);
  nn::Model m = one_conv();
  optim::SGD sgd(m.parameters(), optim::SGDOptions{});
  nn::MSELoss loss;
  train::TrainerOptions o;
  o.progress = false;
  o.precision = DType::bf16;
  if (ops::cpu_bf16_supported()) {
    CHECK_NOTHROW(train::Trainer(comm, m, sgd, loss, o));
  } else {
    CHECK_THROWS_AS(train::Trainer(comm, m, sgd, loss, o), ConfigError);
    CHECK_THROWS_WITH(train::Trainer(comm, m, sgd, loss, o),
                      Catch::Contains("layer 'conv' (Conv2d)") && Catch::Contains("training.precision=f32"));
  }
  // Without convolutions or pooling no bf16 kernel of oneDNN is needed.
  nn::Model dense;
  dense.input({16});
  dense.append(std::make_shared<nn::Linear>(16, 4), "fc");
  dense.append(std::make_shared<nn::ReLU>(), "relu");
  dense.compile();
  dense.init(1);
  optim::SGD sgd_dense(dense.parameters(), optim::SGDOptions{});
  CHECK_NOTHROW(train::Trainer(comm, dense, sgd_dense, loss, o));
}
