// Start-up of data-parallel training: every rank must hold the same model. The check
// compares names, shapes and dtypes of all parameters and buffers; on a mismatch every
// rank throws the same DistError naming the first differing entry (nothing hangs: every
// rank takes part in the same fixed number of collectives). The broadcast then copies
// rank 0's values to all ranks.
#pragma once
#include <vector>

#include "halo/dist/communicator.hpp"
#include "halo/nn/parameter.hpp"

namespace halo::nn {
class Model;
}

namespace halo::dist {

/// One tensor's description: what the consistency check compares.
struct TensorSignature {
  std::string name;
  Shape shape;
  DType dtype = DType::f32;
  std::string str() const;  ///< "'conv1/weight' f32[16,4,3,3,3]"
};

/// Throws DistError on every rank, naming the first entry that differs between ranks.
void check_same_signatures(const Communicator& comm, const std::vector<TensorSignature>& local,
                           const std::string& what = "model");
/// Parameters then buffers of the model, in definition order.
std::vector<TensorSignature> model_signatures(nn::Model& model);
void check_same_model(const Communicator& comm, nn::Model& model);

/// Copies rank `root`'s values into every rank's tensors (dense, on any device; GPU tensors
/// go through host copies). Small tensors travel together, a few broadcasts for a whole model.
/// Every rank must pass the same list: the same shapes, dtypes and strides in the same order
/// (the bytes are moved as they lie; check_same_model checks shapes and dtypes).
void broadcast_tensors(const Communicator& comm, const std::vector<Tensor*>& tensors, int root = 0);
/// Checks the model (check_same_model) then broadcasts parameters and buffers from rank 0.
void broadcast_model(const Communicator& comm, nn::Model& model);

}  // namespace halo::dist
