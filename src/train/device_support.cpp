#include "halo/train/device_support.hpp"

#include "backends.hpp"
#include "halo/ops/registry.hpp"
#include "halo/util/error.hpp"

namespace halo::train {

std::vector<LayerRef> layers_without(const nn::Model& model, const FamilyAvailable& available) {
  std::vector<LayerRef> out;
  for (const auto& n : model.nodes()) {
    if (!n.layer) continue;  // a model input
    if (!n.layer->runs_with(available)) out.push_back({n.name, n.layer->type()});
  }
  return out;
}

void check_model_runs_on(const nn::Model& model, const Device& device, const std::string& who) {
  if (device.is_cpu()) return;
  const bool built = ops::has_backend(device.kind);
  // Without a backend for the device, only the layers that declare no op families can be
  // named as unported; the build itself is then the other half of the answer.
  const auto missing = layers_without(
      model, [&](ops::OpFamily f) { return !built || ops::has_kernels(f, device.kind); });
  const std::string no_backend = built ? "" : kernels::missing_backend_hint(device.kind);
  if (missing.empty()) {
    HALO_CHECK_T(ConfigError, built, who, ": cannot train on ", device.str(), ": ", no_backend,
                 "; or use training.device=cpu");
    return;
  }
  std::string list;
  for (const auto& l : missing) list += "\n  " + l.name + " (" + l.type + ")";
  throw ConfigError(str(who, ": ", missing.size(), " layer(s) of the model have no kernels for ", device.str(),
                        ", so it cannot train there:", list,
                        "\nuse training.device=cpu, or replace these layers; a custom layer whose passes only call "
                        "halo::ops runs wherever its ops have kernels once it lists their families "
                        "(nn::Layer::op_families)",
                        built ? "" : "\n(besides, " + no_backend + ")"));
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
               "the CUDA build with NCCL_ROOT pointing at it); or use training.device=cpu");
  return GradBackend::nccl;
}

}  // namespace halo::train
