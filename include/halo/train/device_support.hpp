// What a run on a GPU needs checked before its first step, so that a missing piece fails at
// start-up with one message rather than mid-step with a kernel error:
//
//   - every layer of the model runs on the device (nn::Layer::runs_on: the op families its
//     passes call have kernels for that device kind in this build; a custom layer computing
//     only through halo::ops declares its families with nn::Layer::op_families);
//   - the gradient allreduce backend (`dist.backend`: auto, mpi or nccl) fits the device.
//
// Both checks are plain functions of their inputs, so they are tested on machines without
// a GPU.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "halo/nn/model.hpp"
#include "halo/tensor/device.hpp"

namespace halo::train {

struct LayerRef {
  std::string name;  ///< node name in the model
  std::string type;  ///< Layer::type()
};
/// Whether an op family has kernels (for the device in question).
using FamilyAvailable = std::function<bool(ops::OpFamily)>;
/// The model's layers (in node order) that cannot run where only the families for which
/// `available` is true have kernels: those that do not declare their op families, and those
/// using a family that is not available.
std::vector<LayerRef> layers_without(const nn::Model& model, const FamilyAvailable& available);

/// Throws ConfigError when `device` is a GPU and the model cannot run there: naming every
/// layer that cannot (by name and type), or saying that this build has no backend for the
/// device. Does nothing for the CPU. `who` names the run.
void check_model_runs_on(const nn::Model& model, const Device& device, const std::string& who);

/// How gradients are averaged across ranks.
enum class GradBackend { mpi, nccl };

/// `dist.backend` resolved for a model on `device`: auto picks nccl for a GPU and mpi for the
/// CPU. Throws ConfigError when the choice cannot work: nccl for a CPU model, mpi for a GPU
/// model (the MPI path reduces host memory), or nccl in a build without NCCL (`nccl_built`).
/// `where` (e.g. "rank 3 on nid001234") is put in the messages.
GradBackend resolve_grad_backend(const std::string& backend, const Device& device, bool nccl_built,
                                 const std::string& where);

}  // namespace halo::train
