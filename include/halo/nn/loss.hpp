// Loss interface: forward returns the mean loss over the local batch as a double and keeps
// what backward needs; backward returns dLoss/dPrediction.
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
};

}  // namespace halo::nn
