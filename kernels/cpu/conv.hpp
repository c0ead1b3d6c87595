// CPU convolution kernels behind halo::ops (private to the library).
//
// Every kernel works on a "direct" convolution geometry: x (N, Cin, in...) (*)
// w (Cout, Cin/G, k...) = y (N, Cout, out...). The dispatch maps a transposed convolution
// onto it (its forward is the direct backward-data and vice versa). 2D problems use
// depth 1 with a kernel, stride and dilation of 1 in that axis.
#pragma once
#include <cstdint>
#include <memory>

#include "halo/ops/conv.hpp"
#include "plan_state.hpp"
#include "halo/tensor/tensor.hpp"

namespace halo::kernels::cpu {

struct ConvGeometry {
  int64_t N = 1, Cin = 1, Cout = 1, G = 1;
  int64_t in[3] = {1, 1, 1}, out[3] = {1, 1, 1}, k[3] = {1, 1, 1};
  int64_t stride[3] = {1, 1, 1}, pad[3] = {0, 0, 0}, dil[3] = {1, 1, 1};
  int spatial_dims = 3;  ///< how the caller's tensors are shaped (2: no depth axis)
  int64_t in_volume() const { return in[0] * in[1] * in[2]; }
  int64_t out_volume() const { return out[0] * out[1] * out[2]; }
  int64_t k_volume() const { return k[0] * k[1] * k[2]; }
};

// ---- reference (f32, f64; contiguous NC... tensors; outputs overwritten) ----
void conv_ref_forward(const ConvGeometry& g, const Tensor& x, const Tensor& w, const Tensor& y);
void conv_ref_backward_data(const ConvGeometry& g, const Tensor& gy, const Tensor& w, const Tensor& gx);
void conv_ref_backward_weights(const ConvGeometry& g, const Tensor& x, const Tensor& gy, const Tensor& gw);

// ---- oneDNN (f32 or bf16 activations, channels-last; weights contiguous f32, cast to bf16 in
// the reorder into oneDNN's format; weight and bias gradients f32) ----
// `state` is the plan's slot for this pass; the kernel creates its primitives there once.
// With `blocked`, oneDNN picks the activation formats too and the channels-last tensors
// are reordered into and out of plan-owned buffers around the primitive.
using StateSlot = std::shared_ptr<ops::detail::ConvPlanState>;
/// Whether oneDNN has bf16 convolutions on this CPU (asked once; see ops::cpu_bf16_supported).
bool onednn_bf16_supported();
void conv_onednn_forward(StateSlot& state, const ConvGeometry& g, const Tensor& x, const Tensor& w,
                         const Tensor& bias, const ops::ConvEpilogue& e, const Tensor& y, bool blocked);
void conv_onednn_backward_data(StateSlot& state, const ConvGeometry& g, const Tensor& gy, const Tensor& w,
                               const Tensor& gx, bool blocked);
/// Overwrites gw (contiguous) and gb (if defined).
void conv_onednn_backward_weights(StateSlot& state, const ConvGeometry& g, const Tensor& x, const Tensor& gy,
                                  const Tensor& gw, const Tensor& gb, bool blocked);

// ---- stride-2 transposed 3x3 as four stride-1 phase convolutions on oneDNN
// (kernels/cpu/conv_subpixel_onednn.cpp). `g` is the direct problem of the transposed layer
// (as for the other kernels): large grid in, small grid out. Outputs overwritten. ----
bool subpixel_supported(const ConvGeometry& g);
/// y (the layer's output, channels-last) from x (its input, channels-last) and w (Cin, Cout, 3, 3).
void conv_subpixel_transposed_forward(StateSlot& state, const ConvGeometry& g, const Tensor& x, const Tensor& w,
                                      const Tensor& y);
/// gw (Cin, Cout, 3, 3) from the layer's input x and output gradient gy (channels-last).
void conv_subpixel_transposed_backward_weights(StateSlot& state, const ConvGeometry& g, const Tensor& x,
                                               const Tensor& gy, const Tensor& gw);

// ---- own AVX-512 kernel for few input channels and 32 output channels (the first
// CosmoFlow layer): 3x3x3, stride 1, dilation 1, padding 1, groups 1, channels-last f32 ----
bool first_layer_supported(const ConvGeometry& g);
void conv_first_layer_forward(const ConvGeometry& g, const Tensor& x, const Tensor& w, const Tensor& bias,
                              const ops::ConvEpilogue& e, const Tensor& y);
void conv_first_layer_backward_data(const ConvGeometry& g, const Tensor& gy, const Tensor& w, const Tensor& gx);
/// Overwrites gw (contiguous) and gb (if defined).
/// With `act_output` defined, `gy` is the gradient of the activation's output and the
/// epilogue's activation derivative (read from act_output's sign) is applied on the fly.
void conv_first_layer_backward_weights(const ConvGeometry& g, const Tensor& x, const Tensor& gy, const Tensor& gw,
                                       const Tensor& gb, const Tensor& act_output = Tensor(),
                                       const ops::ConvEpilogue& epi = {});

// ---- own depthwise kernels (groups = channels), 2D, f32 channels-last, any kernel, stride,
// padding, dilation; outputs overwritten (kernels/cpu/conv_depthwise.cpp) ----
bool depthwise_supported(const ConvGeometry& g);
void conv_depthwise_forward(const ConvGeometry& g, const Tensor& x, const Tensor& w, const Tensor& bias,
                            const ops::ConvEpilogue& e, const Tensor& y);
void conv_depthwise_backward_data(const ConvGeometry& g, const Tensor& gy, const Tensor& w, const Tensor& gx);
/// Overwrites gw (contiguous) and gb (if defined).
void conv_depthwise_backward_weights(const ConvGeometry& g, const Tensor& x, const Tensor& gy, const Tensor& gw,
                                     const Tensor& gb);

}  // namespace halo::kernels::cpu
