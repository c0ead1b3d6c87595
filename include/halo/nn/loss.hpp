// Loss interface: forward returns the mean loss over the local batch as a double and keeps
// what backward needs; backward returns dLoss/dPrediction. gradient() gives the latter
// without the former: on a GPU, forward's value is read back to the host, which a step
// captured as a CUDA graph (cuda::Graph) cannot do.
#pragma once
#include <string>

#include "halo/tensor/tensor.hpp"

namespace halo::nn {

class Loss {
 public:
  virtual ~Loss() = default;
  virtual std::string type() const = 0;
  virtual double forward(const Tensor& prediction, const Tensor& target) = 0;
  virtual Tensor backward() = 0;
  /// dLoss/dPrediction for `prediction`, without reading the loss's value where the loss can
  /// (MSELoss, L1Loss: their gradient needs no sum over the batch); the default runs
  /// forward() then backward(), which synchronises with a GPU.
  virtual Tensor gradient(const Tensor& prediction, const Tensor& target) {
    forward(prediction, target);
    return backward();
  }
};

}  // namespace halo::nn
