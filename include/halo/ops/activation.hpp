// The point-wise activations Halo knows, shared by the element-wise ops and by the fused
// epilogues of convolutions (which support none, relu and leaky_relu).
//
// HALO_ACTIVATIONS lists them once: the enum, their names and every backend's dispatch
// (kernels/activation_math.hpp, which also holds their math) are generated from it.
#pragma once

namespace halo::ops {

#define HALO_ACTIVATIONS(X) X(none) X(relu) X(leaky_relu) X(tanh) X(sigmoid)

enum class Activation {
#define HALO_ACTIVATION_ENUM_ENTRY(n) n,
  HALO_ACTIVATIONS(HALO_ACTIVATION_ENUM_ENTRY)
#undef HALO_ACTIVATION_ENUM_ENTRY
};
const char* name(Activation a);

}  // namespace halo::ops
