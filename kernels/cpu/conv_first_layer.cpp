#include "cpu/conv.hpp"
namespace halo::kernels::cpu {
bool first_layer_supported(const ConvGeometry&) { return false; }
void conv_first_layer_forward(const ConvGeometry&, const Tensor&, const Tensor&, const Tensor&, const ops::ConvEpilogue&,
                              const Tensor&) {}
void conv_first_layer_backward_weights(const ConvGeometry&, const Tensor&, const Tensor&, const Tensor&, const Tensor&) {}
}  // namespace halo::kernels::cpu
