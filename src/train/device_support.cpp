#include "halo/train/device_support.hpp"

#include <mutex>

#include "halo/util/error.hpp"

namespace halo::train {

namespace {

std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}

std::set<std::string>& registry() {
  // The built-in layers with CUDA kernels behind every op their passes call (cuDNN
  // convolutions including transposed ones, pooling, global average pooling, BatchNorm with
  // fused ReLU, activations, upsampling, cuBLAS matmul, concat, elementwise, dropout masks).
  // A layer type missing here is refused on a GPU at start-up.
  static std::set<std::string> types = {
      "Conv2d",    "Conv3d",      "ConvTranspose2d", "ConvTranspose3d",  "MaxPool2d", "MaxPool3d", "AvgPool2d",
      "AvgPool3d", "GlobalAvgPool", "BatchNorm2d",   "BatchNorm3d",      "BatchNorm2d+ReLU", "BatchNorm3d+ReLU",
      "ReLU",      "LeakyReLU",   "Tanh",            "Sigmoid",          "Upsample",  "Linear",    "Flatten",
      "Concat",    "Add",         "Scale",           "Dropout"};
  return types;
}

}  // namespace

std::set<std::string> cuda_layer_types() {
  std::lock_guard<std::mutex> lock(registry_mutex());
  return registry();
}

void declare_cuda_layer_type(const std::string& type) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  registry().insert(type);
}

std::vector<LayerRef> layers_without(const nn::Model& model, const std::set<std::string>& supported) {
  std::vector<LayerRef> out;
  for (const auto& n : model.nodes()) {
    if (!n.layer) continue;  // a model input
    const std::string type = n.layer->type();
    if (!supported.count(type)) out.push_back({n.name, type});
  }
  return out;
}

void check_model_runs_on(const nn::Model& model, const Device& device, const std::string& who) {
  if (!device.is_cuda()) return;
  const auto missing = layers_without(model, cuda_layer_types());
  if (missing.empty()) return;
  std::string list;
  for (const auto& l : missing) list += "\n  " + l.name + " (" + l.type + ")";
  throw ConfigError(str(who, ": ", missing.size(), " layer(s) of the model have no CUDA kernel, so it cannot train on ",
                        device.str(), ":", list,
                        "\nuse training.device=cpu, or replace these layers; a custom layer whose passes only call "
                        "ops with CUDA kernels can be declared with train::declare_cuda_layer_type()"));
}

GradBackend resolve_grad_backend(const std::string& backend, const Device& device, bool nccl_built,
                                 const std::string& where) {
  HALO_CHECK_T(ConfigError, backend == "auto" || backend == "mpi" || backend == "nccl",
               "dist.backend must be auto, mpi or nccl (got '", backend, "')");
  if (device.is_cpu()) {
    HALO_CHECK_T(ConfigError, backend != "nccl", "dist.backend=nccl: ", where,
                 " trains on the CPU, and NCCL reduces GPU memory only; use dist.backend=auto or mpi, "
                 "or training.device=cuda");
    return GradBackend::mpi;
  }
  HALO_CHECK_T(ConfigError, backend != "mpi", "dist.backend=mpi: ", where, " trains on ", device.str(),
               ", and the MPI gradient path reduces host memory only; use dist.backend=auto or nccl");
  HALO_CHECK_T(ConfigError, nccl_built, "training.device=", device.str(), ": ", where,
               " runs a build of Halo without NCCL, which gradients on GPUs need (install NCCL 2 and reconfigure "
               "with -DHALO_ENABLE_CUDA=ON, NCCL_ROOT pointing at it); or use training.device=cpu");
  return GradBackend::nccl;
}

}  // namespace halo::train
