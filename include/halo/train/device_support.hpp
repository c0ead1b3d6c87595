// What a run on a GPU needs checked before its first step, so that a missing piece fails at
// start-up with one message rather than mid-step with a kernel error:
//
//   - every layer of the model has a CUDA path (cuda_layer_types(); a custom layer whose
//     forward and backward only call ops with CUDA kernels can be declared with
//     declare_cuda_layer_type("MyLayer"));
//   - the gradient allreduce backend (`dist.backend`: auto, mpi or nccl) fits the device.
//
// Both checks are plain functions of their inputs, so they are tested on machines without
// a GPU.
#pragma once
#include <set>
#include <string>
#include <vector>

#include "halo/nn/model.hpp"
#include "halo/tensor/device.hpp"

namespace halo::train {

/// Layer::type() strings of the built-in layers whose forward and backward run on CUDA
/// tensors, plus those declared with declare_cuda_layer_type().
std::set<std::string> cuda_layer_types();
/// Declares a layer type (Layer::type()) whose passes run on CUDA tensors.
void declare_cuda_layer_type(const std::string& type);

struct LayerRef {
  std::string name;  ///< node name in the model
  std::string type;  ///< Layer::type()
};
/// The model's layers (in node order) whose type is not in `supported`.
std::vector<LayerRef> layers_without(const nn::Model& model, const std::set<std::string>& supported);

/// Throws ConfigError listing every layer of `model` without a CUDA path (by name and type)
/// when `device` is a GPU; does nothing for the CPU. `who` names the run.
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
