// The start-up checks of a run on a GPU, which must refuse a model with a layer lacking a
// CUDA kernel and a gradient backend that cannot work, before any step. They touch no GPU,
// so they are checked here in every build.
#include <catch2/catch.hpp>

#include <string>

#include "halo/models/cosmoflow.hpp"
#include "halo/models/deeplabv3.hpp"
#include "halo/nn/activation.hpp"
#include "halo/nn/model.hpp"
#include "halo/train/device_support.hpp"
#include "halo/util/error.hpp"

using namespace halo;

namespace {

// A layer type the library knows nothing about.
class Identity final : public nn::Layer {
 public:
  explicit Identity(std::string type) : type_(std::move(type)) {}
  std::string type() const override { return type_; }
  Shape output_shape(const std::vector<Shape>& inputs) const override { return inputs.at(0); }
  using Layer::forward;
  Tensor forward(const std::vector<Tensor>& inputs) override { return inputs.at(0); }
  std::vector<Tensor> backward(const Tensor& grad_output) override { return {grad_output}; }

 private:
  std::string type_;
};

nn::Model model_with(const std::string& custom_type) {
  nn::Model m;
  m.input({4});
  m.append(std::make_shared<nn::ReLU>(), "relu");
  m.append(std::make_shared<Identity>(custom_type), "mystery");
  m.append(std::make_shared<nn::Tanh>(), "tanh");
  m.compile();
  return m;
}

}  // namespace

TEST_CASE("layers_without lists, in order, the layers whose type is not supported") {
  nn::Model m = model_with("Mystery");
  const auto missing = train::layers_without(m, train::cuda_layer_types());
  REQUIRE(missing.size() == 1);
  CHECK(missing[0].name == "mystery");
  CHECK(missing[0].type == "Mystery");

  const auto none_known = train::layers_without(m, {});
  REQUIRE(none_known.size() == 3);
  CHECK(none_known[0].name == "relu");
  CHECK(none_known[2].type == "Tanh");
}

TEST_CASE("check_model_runs_on refuses a GPU run naming every layer without a CUDA kernel") {
  nn::Model m = model_with("Unported");
  CHECK_NOTHROW(train::check_model_runs_on(m, Device::cpu(), "test"));
  CHECK_THROWS_AS(train::check_model_runs_on(m, Device::cuda(1), "test"), ConfigError);
  CHECK_THROWS_WITH(train::check_model_runs_on(m, Device::cuda(1), "test"),
                    Catch::Contains("mystery (Unported)") && Catch::Contains("cuda:1") &&
                        Catch::Contains("training.device=cpu") && !Catch::Contains("relu (ReLU)"));
}

TEST_CASE("a declared layer type passes the CUDA check") {
  nn::Model m = model_with("PortedByUser");
  CHECK_THROWS_AS(train::check_model_runs_on(m, Device::cuda(0), "test"), ConfigError);
  train::declare_cuda_layer_type("PortedByUser");
  CHECK_NOTHROW(train::check_model_runs_on(m, Device::cuda(0), "test"));
}

TEST_CASE("the reference models use only layers with CUDA kernels") {
  // A new layer type in either model must get a CUDA path (and its entry) before the
  // drivers' GPU runs accept it.
  models::CosmoFlowOptions c;
  c.input_size = 32;
  c.conv_layers = 3;
  c.base_filters = 2;
  nn::Model cosmo = models::cosmoflow(c);
  for (const auto& l : train::layers_without(cosmo, train::cuda_layer_types())) FAIL_CHECK(l.name << " " << l.type);

  models::DeepLabV3PlusOptions d;
  d.height = 32;
  d.width = 32;
  d.middle_blocks = 1;
  d.channel_scale = 0.05;
  nn::Model deeplab = models::deeplabv3_plus(d);
  for (const auto& l : train::layers_without(deeplab, train::cuda_layer_types())) FAIL_CHECK(l.name << " " << l.type);
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
