// The point-wise activations Halo knows, shared by the element-wise ops and by the fused
// epilogues of convolutions (which support none, relu and leaky_relu).
#pragma once

namespace halo::ops {

enum class Activation { none, relu, leaky_relu, tanh, sigmoid };
const char* name(Activation a);

}  // namespace halo::ops
