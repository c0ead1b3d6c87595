// The start-up checks of a run on a GPU, which must refuse a model with a layer that cannot
// run there and a gradient backend that cannot work, before any step. They touch no GPU, so
// they are checked here in every build (a CPU build has no cuda backend at all).
#include <catch2/catch.hpp>

#include <set>
#include <string>

#include "halo/models/cosmoflow.hpp"
#include "halo/models/deeplabv3.hpp"
#include "halo/nn/activation.hpp"
#include "halo/nn/model.hpp"
#include "halo/ops/registry.hpp"
#include "halo/train/device_support.hpp"
#include "halo/util/error.hpp"

using namespace halo;

namespace {

// A layer type the library knows nothing about; with `families` it declares the op families
// its passes use.
class Identity final : public nn::Layer {
 public:
  explicit Identity(std::string type, std::optional<std::vector<ops::OpFamily>> families = std::nullopt)
      : type_(std::move(type)), families_(std::move(families)) {}
  std::string type() const override { return type_; }
  Shape output_shape(const std::vector<Shape>& inputs) const override { return inputs.at(0); }
  using Layer::forward;
  Tensor forward(const std::vector<Tensor>& inputs) override { return inputs.at(0); }
  std::vector<Tensor> backward(const Tensor& grad_output) override { return {grad_output}; }
  std::optional<std::vector<ops::OpFamily>> op_families() const override { return families_; }

 private:
  std::string type_;
  std::optional<std::vector<ops::OpFamily>> families_;
};

nn::Model model_with(std::shared_ptr<nn::Layer> custom) {
  nn::Model m;
  m.input({4});
  m.append(std::make_shared<nn::ReLU>(), "relu");
  m.append(std::move(custom), "mystery");
  m.append(std::make_shared<nn::Tanh>(), "tanh");
  m.compile();
  return m;
}

const train::FamilyAvailable all_families = [](ops::OpFamily) { return true; };
const train::FamilyAvailable no_family = [](ops::OpFamily) { return false; };

bool cuda_built() { return ops::has_backend(DeviceKind::cuda); }

}  // namespace

TEST_CASE("every op family has cpu kernels, and a cuda backend, when built, has them all") {
  for (ops::OpFamily f : ops::all_op_families()) {
    INFO(ops::name(f));
    CHECK(ops::has_kernels(f, DeviceKind::cpu));
    CHECK(ops::has_kernels(f, DeviceKind::cuda) == cuda_built());
  }
}

TEST_CASE("layers_without lists, in order, the layers that cannot run where only some families have kernels") {
  nn::Model m = model_with(std::make_shared<Identity>("Mystery"));
  const auto missing = train::layers_without(m, all_families);
  REQUIRE(missing.size() == 1);  // it declares no families
  CHECK(missing[0].name == "mystery");
  CHECK(missing[0].type == "Mystery");

  const auto none_known = train::layers_without(m, no_family);
  REQUIRE(none_known.size() == 3);
  CHECK(none_known[0].name == "relu");
  CHECK(none_known[2].type == "Tanh");

  nn::Model pooling = model_with(std::make_shared<Identity>("PoolingUser", std::vector<ops::OpFamily>{ops::OpFamily::pool}));
  const auto no_pool = train::layers_without(pooling, [](ops::OpFamily f) { return f != ops::OpFamily::pool; });
  REQUIRE(no_pool.size() == 1);
  CHECK(no_pool[0].type == "PoolingUser");
}

TEST_CASE("runs_on: every layer runs on the cpu; on cuda only with declared families and a cuda backend") {
  Identity undeclared("Unported");
  Identity declared("Ported", std::vector<ops::OpFamily>{ops::OpFamily::elementwise});
  CHECK(undeclared.runs_on(Device::cpu()));
  CHECK(declared.runs_on(Device::cpu()));
  CHECK_FALSE(undeclared.runs_on(Device::cuda(0)));
  CHECK(declared.runs_on(Device::cuda(0)) == cuda_built());
  CHECK(nn::ReLU().runs_on(Device::cuda(1)) == cuda_built());
}

TEST_CASE("check_model_runs_on refuses a GPU run naming every layer that cannot run there") {
  nn::Model m = model_with(std::make_shared<Identity>("Unported"));
  CHECK_NOTHROW(train::check_model_runs_on(m, Device::cpu(), "test"));
  CHECK_THROWS_AS(train::check_model_runs_on(m, Device::cuda(1), "test"), ConfigError);
  CHECK_THROWS_WITH(train::check_model_runs_on(m, Device::cuda(1), "test"),
                    Catch::Contains("mystery (Unported)") && Catch::Contains("cuda:1") &&
                        Catch::Contains("training.device=cpu") && Catch::Contains("op_families") &&
                        !Catch::Contains("relu (ReLU)"));
  if (!cuda_built())
    CHECK_THROWS_WITH(train::check_model_runs_on(m, Device::cuda(1), "test"),
                      Catch::Contains("this build of Halo has no CUDA support"));
}

TEST_CASE("a custom layer declaring its op families passes the GPU check wherever they have kernels") {
  nn::Model m = model_with(std::make_shared<Identity>("PortedByUser", std::vector<ops::OpFamily>{ops::OpFamily::elementwise}));
  CHECK(train::layers_without(m, all_families).empty());
  if (cuda_built()) {
    CHECK_NOTHROW(train::check_model_runs_on(m, Device::cuda(0), "test"));
  } else {
    // Nothing to name but the build itself.
    CHECK_THROWS_WITH(train::check_model_runs_on(m, Device::cuda(0), "test"),
                      Catch::Contains("this build of Halo has no CUDA support") &&
                          Catch::Contains("-DHALO_ENABLE_CUDA=ON") && !Catch::Contains("PortedByUser"));
  }
}

TEST_CASE("the reference models use only layers that declare their op families, all with CUDA kernels when built") {
  // A new layer type in either model must list its families (and they need cuda kernels)
  // before the drivers' GPU runs accept it.
  const train::FamilyAvailable on_cuda = [](ops::OpFamily f) {
    return !ops::has_backend(DeviceKind::cuda) || ops::has_kernels(f, DeviceKind::cuda);
  };
  models::CosmoFlowOptions c;
  c.input_size = 32;
  c.conv_layers = 3;
  c.base_filters = 2;
  nn::Model cosmo = models::cosmoflow(c);
  for (const auto& l : train::layers_without(cosmo, on_cuda)) FAIL_CHECK(l.name << " " << l.type);

  models::DeepLabV3PlusOptions d;
  d.height = 32;
  d.width = 32;
  d.middle_blocks = 1;
  d.channel_scale = 0.05;
  nn::Model deeplab = models::deeplabv3_plus(d);
  for (const auto& l : train::layers_without(deeplab, on_cuda)) FAIL_CHECK(l.name << " " << l.type);
  // The decoder's transposed convolution and the ASPP image pooling are among them.
  std::set<std::string> types;
  for (const auto& n : deeplab.nodes())
    if (n.layer) types.insert(n.layer->type());
  CHECK(types.count("GlobalAvgPool") + types.count("ConvTranspose2d") + types.count("Upsample") >= 1);
}

TEST_CASE("dist.backend resolves to NCCL on GPUs and MPI on the CPU, refusing mismatches") {
  using train::GradBackend;
  const std::string where = "rank 3 on nid0042";
  CHECK(train::resolve_grad_backend("auto", Device::cpu(), false, where) == GradBackend::mpi);
  CHECK(train::resolve_grad_backend("mpi", Device::cpu(), true, where) == GradBackend::mpi);
  CHECK(train::resolve_grad_backend("auto", Device::cuda(0), true, where) == GradBackend::nccl);
  CHECK(train::resolve_grad_backend("nccl", Device::cuda(2), true, where) == GradBackend::nccl);

  CHECK_THROWS_WITH(train::resolve_grad_backend("nccl", Device::cpu(), true, where),
                    Catch::Contains("dist.backend=nccl") && Catch::Contains("rank 3 on nid0042"));
  CHECK_THROWS_WITH(train::resolve_grad_backend("mpi", Device::cuda(0), true, where),
                    Catch::Contains("dist.backend=mpi") && Catch::Contains("cuda:0"));
  CHECK_THROWS_WITH(train::resolve_grad_backend("auto", Device::cuda(0), false, where),
                    Catch::Contains("without NCCL") && Catch::Contains("rank 3 on nid0042"));
  CHECK_THROWS_AS(train::resolve_grad_backend("gloo", Device::cpu(), true, where), ConfigError);
}
