// Stride-2 transposed 3x3 convolutions (padding 1, output padding 1: exactly doubling H and
// W, the DeepLabv3+ decoder) as four stride-1 convolutions on the small grid, one per output
// phase (row parity a, column parity b):
//   y[2m + a, 2n + b] = sum over the taps k of that parity of x[m + t] w[k]
// where an even output takes the centre tap (k = 1, t = 0) and an odd one taps k = 2 at t = 0
// and k = 0 at t = 1. So phase (a, b) is a direct convolution with a 1x1, 1x2, 2x1 or 2x2
// kernel (zero padding on the high side only), all nine taps used once.
//
// Why: oneDNN runs the stride-2 backward-data (the transposed forward) and the stride-2
// weight gradient at ~250 GFLOP/s; its stride-1 kernels run at 400-500. The phases are
// computed into dense channels-last buffers and interleaved into the output (forward), or
// the output gradient is split into phases first (weight gradient): one extra pass over
// the large tensor each, a few percent of the convolution.
#include <omp.h>

#include <cstring>

#include "cpu/conv.hpp"

namespace halo::kernels::cpu {
namespace {

struct PhaseState : ops::detail::ConvPlanState {
  StateSlot slot[4];
  Tensor weight[4];  // phase weights (Cout, Cin, th, tw), or their gradients
};

/// Taps of parity a: (number of taps, kernel index of tap t).
int taps(int a) { return a == 0 ? 1 : 2; }
int64_t tap_index(int a, int t) { return a == 0 ? 1 : (t == 0 ? 2 : 0); }

/// The direct stride-1 problem of phase (a, b) on the small grid.
ConvGeometry phase_geometry(const ConvGeometry& g, int a, int b) {
  // For the transposed layer the direct problem's input is the large grid (the layer's
  // output) and its output the small grid (the layer's input).
  ConvGeometry p;
  p.spatial_dims = 2;
  p.N = g.N;
  p.G = 1;
  p.Cin = g.Cout;   // the layer's input channels (small grid)
  p.Cout = g.Cin;   // the layer's output channels
  p.in[1] = p.out[1] = g.out[1];
  p.in[2] = p.out[2] = g.out[2];
  p.k[1] = taps(a);
  p.k[2] = taps(b);
  return p;
}

/// Phase (a, b)'s part of the transposed weight (Cin_layer, Cout_layer, 3, 3) as a direct
/// weight (Cout_layer, Cin_layer, th, tw).
void phase_weight(const Tensor& w, int a, int b, const Tensor& out) {
  const int64_t ci_n = w.size(0), co_n = w.size(1), th = taps(a), tw = taps(b);
  const float* wp = w.data<float>();
  float* op = out.data<float>();
  for (int64_t co = 0; co < co_n; ++co)
    for (int64_t ci = 0; ci < ci_n; ++ci)
      for (int64_t i = 0; i < th; ++i)
        for (int64_t j = 0; j < tw; ++j)
          op[((co * ci_n + ci) * th + i) * tw + j] = wp[((ci * co_n + co) * 3 + tap_index(a, int(i))) * 3 + tap_index(b, int(j))];
}

/// Copies between the large channels-last grid (N, 2H, 2W, C) and phase (a, b) of it
/// (N, H, W, C): to_phase = true gathers, false scatters.
void move_phase(float* big, float* phase, int64_t N, int64_t H, int64_t W, int64_t C, int a, int b, bool to_phase) {
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < N * H; ++row) {
    const int64_t n = row / H, m = row % H;
    float* bp = big + ((n * 2 * H + 2 * m + a) * 2 * W + b) * C;
    float* pp = phase + ((n * H + m) * W) * C;
    for (int64_t j = 0; j < W; ++j) {
      if (to_phase)
        std::memcpy(pp + j * C, bp + 2 * j * C, size_t(C) * sizeof(float));
      else
        std::memcpy(bp + 2 * j * C, pp + j * C, size_t(C) * sizeof(float));
    }
  }
}

PhaseState& state_of(StateSlot& slot) {
  if (!slot) slot = std::make_shared<PhaseState>();
  return *static_cast<PhaseState*>(slot.get());
}

}  // namespace

bool subpixel_supported(const ConvGeometry& g) {
  // g is the direct problem of the transposed layer: large grid in, small grid out.
  // Channel counts that fill AVX-512 vectors: with 3 output channels (the logits layer) the
  // phase convolutions run no faster than the stride-2 one.
  return g.spatial_dims == 2 && g.G == 1 && g.Cin % 16 == 0 && g.Cout % 16 == 0 && g.k[1] == 3 && g.k[2] == 3 && g.stride[1] == 2 && g.stride[2] == 2 &&
         g.pad[1] == 1 && g.pad[2] == 1 && g.dil[1] == 1 && g.dil[2] == 1 && g.in[1] == 2 * g.out[1] &&
         g.in[2] == 2 * g.out[2];
}

void conv_subpixel_transposed_forward(StateSlot& slot, const ConvGeometry& g, const Tensor& x, const Tensor& w,
                                      const Tensor& y) {
  PhaseState& s = state_of(slot);
  const int64_t H = g.out[1], W = g.out[2], C = g.Cin;
  // One phase at a time through one buffer (a quarter of the output, from the caching
  // allocator and returned at the end), so the split costs little memory.
  Tensor buffer = Tensor::empty({g.N, C, H, W}, DType::f32, Device::cpu(), MemoryFormat::channels_last);
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 2; ++b) {
      const int ph = 2 * a + b;
      const ConvGeometry pg = phase_geometry(g, a, b);
      if (!s.weight[ph].defined()) s.weight[ph] = Tensor::empty({g.Cin, g.Cout, taps(a), taps(b)});
      phase_weight(w, a, b, s.weight[ph]);
      conv_onednn_forward(s.slot[ph], pg, x, s.weight[ph], Tensor(), ops::ConvEpilogue{}, buffer, false);
      move_phase(y.data<float>(), buffer.data<float>(), g.N, H, W, C, a, b, /*to_phase=*/false);
    }
}

void conv_subpixel_transposed_backward_weights(StateSlot& slot, const ConvGeometry& g, const Tensor& x,
                                               const Tensor& gy, const Tensor& gw) {
  PhaseState& s = state_of(slot);
  const int64_t H = g.out[1], W = g.out[2], C = g.Cin;
  const int64_t ci_n = g.Cout, co_n = g.Cin;  // the layer's input and output channels
  float* gwp = gw.data<float>();
  Tensor buffer = Tensor::empty({g.N, C, H, W}, DType::f32, Device::cpu(), MemoryFormat::channels_last);
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 2; ++b) {
      const int ph = 2 * a + b;
      const ConvGeometry pg = phase_geometry(g, a, b);
      if (!s.weight[ph].defined()) s.weight[ph] = Tensor::empty({g.Cin, g.Cout, taps(a), taps(b)});
      move_phase(gy.data<float>(), buffer.data<float>(), g.N, H, W, C, a, b, /*to_phase=*/true);
      // Blocked activations for the 2-tap phases, as for direct 3x3 weight gradients
      // (src/ops/conv.cpp, prefer_blocked); the 1x1 phase gains nothing from them.
      const bool blocked = (pg.k[1] > 1 || pg.k[2] > 1) && pg.Cin % 16 == 0 && pg.Cout % 16 == 0;
      conv_onednn_backward_weights(s.slot[ph], pg, x, buffer, s.weight[ph], Tensor(), blocked);
      const float* pw = s.weight[ph].data<float>();
      const int th = taps(a), tw = taps(b);
      for (int64_t co = 0; co < co_n; ++co)
        for (int64_t ci = 0; ci < ci_n; ++ci)
          for (int i = 0; i < th; ++i)
            for (int j = 0; j < tw; ++j)
              gwp[((ci * co_n + co) * 3 + tap_index(a, i)) * 3 + tap_index(b, j)] =
                  pw[((co * ci_n + ci) * th + i) * tw + j];
    }
}

}  // namespace halo::kernels::cpu
