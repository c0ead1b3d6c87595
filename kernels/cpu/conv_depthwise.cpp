// Own depthwise 2D convolution kernels (groups = channels, one filter per channel) on f32
// channels-last tensors, any kernel size, stride, padding and dilation.
//
// Why: oneDNN 2.6 has fast depthwise kernels only without dilation; at dilation 2 (the
// DeepLabv3+ exit flow) its backward passes fall back to generic grouped code that runs at
// 2-3 GFLOP/s, 20-40x slower than the memory traffic needs. Depthwise work is a few FLOPs
// per byte, so a plain loop vectorised over the channels of a pixel is enough: every pass
// streams its tensors once, rows of the output in parallel.
#include <omp.h>

#include <vector>

#include "cpu/conv.hpp"

namespace halo::kernels::cpu {
namespace {

// 2D geometry lives in axes 1 and 2 of ConvGeometry (axis 0 is a depth of 1).
struct Dw {
  int64_t N, C, H, W, OH, OW, KH, KW, sy, sx, py, px, dy, dx;
};
Dw dw_of(const ConvGeometry& g) {
  return {g.N,      g.Cin,    g.in[1],  g.in[2],  g.out[1], g.out[2], g.k[1],
          g.k[2],   g.stride[1], g.stride[2], g.pad[1], g.pad[2], g.dil[1], g.dil[2]};
}

/// Weights (C, 1, KH, KW) as (KH*KW, C): one contiguous row of channels per tap.
std::vector<float> taps_by_channel(const Dw& d, const Tensor& w) {
  const float* wp = w.data<float>();
  const int64_t K = d.KH * d.KW;
  std::vector<float> t(size_t(K * d.C));
  for (int64_t c = 0; c < d.C; ++c)
    for (int64_t k = 0; k < K; ++k) t[size_t(k * d.C + c)] = wp[c * K + k];
  return t;
}

}  // namespace

bool depthwise_supported(const ConvGeometry& g) {
  return g.spatial_dims == 2 && g.G > 1 && g.G == g.Cin && g.G == g.Cout;
}

void conv_depthwise_forward(const ConvGeometry& g, const Tensor& x, const Tensor& w, const Tensor& bias,
                            const ops::ConvEpilogue& e, const Tensor& y) {
  const Dw d = dw_of(g);
  const std::vector<float> wt = taps_by_channel(d, w);
  const float* xp = x.data<float>();
  float* yp = y.data<float>();
  const float* bp = bias.defined() ? bias.data<float>() : nullptr;
  const float* wtp = wt.data();
  const int64_t C = d.C;
  const bool act = e.activation != ops::Activation::none;
  const float slope = e.activation == ops::Activation::leaky_relu ? float(e.slope) : 0.0f;
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < d.N * d.OH; ++row) {
    const int64_t n = row / d.OH, oy = row % d.OH;
    for (int64_t ox = 0; ox < d.OW; ++ox) {
      float* out = yp + ((n * d.OH + oy) * d.OW + ox) * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) out[c] = bp ? bp[c] : 0.0f;
      for (int64_t ky = 0; ky < d.KH; ++ky) {
        const int64_t iy = oy * d.sy - d.py + ky * d.dy;
        if (iy < 0 || iy >= d.H) continue;
        for (int64_t kx = 0; kx < d.KW; ++kx) {
          const int64_t ix = ox * d.sx - d.px + kx * d.dx;
          if (ix < 0 || ix >= d.W) continue;
          const float* in = xp + ((n * d.H + iy) * d.W + ix) * C;
          const float* wr = wtp + (ky * d.KW + kx) * C;
#pragma omp simd
          for (int64_t c = 0; c < C; ++c) out[c] += in[c] * wr[c];
        }
      }
      if (act) {
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) out[c] = out[c] > 0.0f ? out[c] : out[c] * slope;
      }
    }
  }
}

void conv_depthwise_backward_data(const ConvGeometry& g, const Tensor& gy, const Tensor& w, const Tensor& gx) {
  const Dw d = dw_of(g);
  const std::vector<float> wt = taps_by_channel(d, w);
  const float* gp = gy.data<float>();
  float* op = gx.data<float>();
  const float* wtp = wt.data();
  const int64_t C = d.C;
  // Gather form: each input pixel sums the output pixels whose window covers it, so every
  // gradient element is written once and rows run in parallel without conflicts.
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < d.N * d.H; ++row) {
    const int64_t n = row / d.H, iy = row % d.H;
    for (int64_t ix = 0; ix < d.W; ++ix) {
      float* out = op + ((n * d.H + iy) * d.W + ix) * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) out[c] = 0.0f;
      for (int64_t ky = 0; ky < d.KH; ++ky) {
        const int64_t ty = iy + d.py - ky * d.dy;
        if (ty < 0 || ty % d.sy != 0 || ty / d.sy >= d.OH) continue;
        const int64_t oy = ty / d.sy;
        for (int64_t kx = 0; kx < d.KW; ++kx) {
          const int64_t tx = ix + d.px - kx * d.dx;
          if (tx < 0 || tx % d.sx != 0 || tx / d.sx >= d.OW) continue;
          const int64_t ox = tx / d.sx;
          const float* in = gp + ((n * d.OH + oy) * d.OW + ox) * C;
          const float* wr = wtp + (ky * d.KW + kx) * C;
#pragma omp simd
          for (int64_t c = 0; c < C; ++c) out[c] += in[c] * wr[c];
        }
      }
    }
  }
}

void conv_depthwise_backward_weights(const ConvGeometry& g, const Tensor& x, const Tensor& gy, const Tensor& gw,
                                     const Tensor& gb) {
  const Dw d = dw_of(g);
  const int64_t C = d.C, K = d.KH * d.KW;
  const float* xp = x.data<float>();
  const float* gp = gy.data<float>();
  const int nt = omp_get_max_threads();
  // Per thread: (K + 1) x C sums in double (the last row is the bias gradient); each output
  // row is summed in float first, so the double adds cost 1/OW of the work.
  std::vector<double> part(size_t(nt) * size_t((K + 1) * C), 0.0);
#pragma omp parallel num_threads(nt)
  {
    double* acc = part.data() + size_t(omp_get_thread_num()) * size_t((K + 1) * C);
    std::vector<float> rowsum(size_t((K + 1) * C));
    float* rs = rowsum.data();
#pragma omp for schedule(static)
    for (int64_t row = 0; row < d.N * d.OH; ++row) {
      const int64_t n = row / d.OH, oy = row % d.OH;
      for (int64_t i = 0; i < (K + 1) * C; ++i) rs[i] = 0.0f;
      for (int64_t ox = 0; ox < d.OW; ++ox) {
        const float* go = gp + ((n * d.OH + oy) * d.OW + ox) * C;
        float* rb = rs + K * C;
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) rb[c] += go[c];
        for (int64_t ky = 0; ky < d.KH; ++ky) {
          const int64_t iy = oy * d.sy - d.py + ky * d.dy;
          if (iy < 0 || iy >= d.H) continue;
          for (int64_t kx = 0; kx < d.KW; ++kx) {
            const int64_t ix = ox * d.sx - d.px + kx * d.dx;
            if (ix < 0 || ix >= d.W) continue;
            const float* in = xp + ((n * d.H + iy) * d.W + ix) * C;
            float* r = rs + (ky * d.KW + kx) * C;
#pragma omp simd
            for (int64_t c = 0; c < C; ++c) r[c] += in[c] * go[c];
          }
        }
      }
#pragma omp simd
      for (int64_t i = 0; i < (K + 1) * C; ++i) acc[i] += double(rs[i]);
    }
  }
  float* wp = gw.data<float>();
  float* bp = gb.defined() ? gb.data<float>() : nullptr;
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t k = 0; k <= K; ++k) {
      double s = 0;
      for (int t = 0; t < nt; ++t) s += part[size_t(t) * size_t((K + 1) * C) + size_t(k * C + c)];
      if (k < K)
        wp[c * K + k] = float(s);
      else if (bp)
        bp[c] = float(s);
    }
  }
}

}  // namespace halo::kernels::cpu
