// A trainable tensor with its gradient. Names are set by the Model ("conv1/weight") and
// serve as checkpoint paths and as the key of the cross-rank consistency check.
#pragma once
#include <string>

#include "halo/tensor/tensor.hpp"

namespace halo::nn {

struct Parameter {
  std::string name;      ///< full path, "<layer>/<local name>", set when added to a Model
  Tensor value;
  Tensor grad;           ///< same shape, dtype and device as value; accumulated by backward
  bool weight_decay = true;  ///< false for biases and normalisation scales by default
};

/// Non-trainable state saved in checkpoints and broadcast at start (BatchNorm running stats).
struct Buffer {
  std::string name;
  Tensor value;
};

}  // namespace halo::nn
