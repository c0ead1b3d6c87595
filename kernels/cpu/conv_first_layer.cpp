// Own AVX-512 kernel for the first CosmoFlow convolution: few input channels (<= 4),
// 32 output channels, 3x3x3, stride 1, padding 1 or 0 per axis (0: a spatially split
// layer's window, whose halo cells come from the neighbours), channels-last f32.
//
// Why: with 4 input channels every oneDNN formulation starves (its blocking wants 16
// channels), running at a few percent of peak while this layer carries a fifth of the
// forward FLOPs. Here the 32 output channels are exactly two zmm registers, so:
//   forward: per output voxel 2 accumulators; a tile of up to 12 voxels along W holds 24
//     accumulators; each (tap, input channel) loads two weight vectors once and
//     broadcasts one input value per voxel into two FMAs.
//   backward-data (not needed in training: the model input takes no gradient): vectors
//     along the 32 output channels, 4 voxels x C accumulators, summed horizontally.
//   backward-weights: for each (kd, kh) the 3 kw x C x 32 weight-gradient block lives in
//     24 registers while a whole W row streams through: 2 vector loads of the output
//     gradient and C*3 broadcasts per voxel feed 6*C FMAs. Each thread reduces into a
//     private copy; the copies are summed in thread order (deterministic).
// Input planes are copied into a per-thread ring of three zero-padded planes, so the
// inner loops have no boundary tests and each input plane is padded once per thread.
#include "cpu/conv.hpp"

#if defined(__AVX512F__)
// GCC 12 reports the deliberately undefined pass-through operand inside its own AVX-512
// shuffle/extract intrinsics as uninitialized (a false positive fixed in later GCC).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>
#endif

namespace halo::kernels::cpu {

#if defined(__AVX512F__)

bool first_layer_supported(const ConvGeometry& g) {
  if (g.spatial_dims != 3 || g.G != 1 || g.Cout != 32 || g.Cin < 1 || g.Cin > 4) return false;
  for (int i = 0; i < 3; ++i)
    if (g.k[i] != 3 || g.stride[i] != 1 || g.dil[i] != 1 || (g.pad[i] != 0 && g.pad[i] != 1) || g.out[i] < 1 ||
        g.out[i] != g.in[i] + 2 * g.pad[i] - 2)
      return false;
  return true;
}

namespace {

constexpr int kCo = 32;

/// Three zero-padded input planes [(H+2ph) x (W+2pw) x C], indexed by input depth mod 3.
class PaddedRing {
 public:
  PaddedRing(const ConvGeometry& g, const float* x) : g_(g), x_(x) {
    plane_ = (g.in[1] + 2 * g.pad[1]) * (g.in[2] + 2 * g.pad[2]) * g.Cin;
    buf_.assign(size_t(4 * plane_), 0.0f);  // 3 ring slots + 1 plane of zeros
    for (auto& t : tag_) t = -1;
  }
  /// The padded plane for input depth `id` of sample n (zeros outside the volume).
  const float* plane(int64_t n, int64_t id) {
    if (id < 0 || id >= g_.in[0]) return buf_.data() + 3 * plane_;
    const int slot = int(id % 3);
    const int64_t key = n * g_.in[0] + id;
    float* p = buf_.data() + slot * plane_;
    if (tag_[slot] != key) {
      const int64_t H = g_.in[1], W = g_.in[2], C = g_.Cin, row = row_stride();
      const float* src = x_ + key * H * W * C;
      // Borders stay zero from the initial fill: only interiors are ever written.
      for (int64_t h = 0; h < H; ++h)
        std::memcpy(p + (h + g_.pad[1]) * row + g_.pad[2] * C, src + h * W * C, size_t(W * C) * 4);
      tag_[slot] = key;
    }
    return p;
  }
  int64_t row_stride() const { return (g_.in[2] + 2 * g_.pad[2]) * g_.Cin; }

 private:
  const ConvGeometry& g_;
  const float* x_;
  int64_t plane_;
  std::vector<float> buf_;
  int64_t tag_[3];
};

struct Epi {
  int act;  // 0 none, 1 relu, 2 leaky
  __m512 slope;
};

inline __m512 activate(__m512 v, const Epi& e) {
  if (e.act == 0) return v;
  const __mmask16 neg = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ);
  return e.act == 1 ? _mm512_maskz_mov_ps(__mmask16(~neg), v) : _mm512_mask_mul_ps(v, neg, v, e.slope);
}

/// WB consecutive output voxels of one row. rows[r] (r = kd*3+kh) point at the padded input
/// row for the first voxel's kw = 0 tap; wp is [9][3][C][32]; y gets WB x 32 values.
template <int C, int WB>
inline void forward_tile(const float* const* rows, const float* wp, const float* bias, const Epi& e, float* y) {
  __m512 acc[WB][2];
  const __m512 b0 = _mm512_loadu_ps(bias), b1 = _mm512_loadu_ps(bias + 16);
  for (int j = 0; j < WB; ++j) {
    acc[j][0] = b0;
    acc[j][1] = b1;
  }
  for (int r = 0; r < 9; ++r) {
    const float* row = rows[r];
    const float* wr = wp + r * 3 * C * kCo;
    for (int kw = 0; kw < 3; ++kw)
      for (int ci = 0; ci < C; ++ci) {
        const __m512 w0 = _mm512_loadu_ps(wr + (kw * C + ci) * kCo);
        const __m512 w1 = _mm512_loadu_ps(wr + (kw * C + ci) * kCo + 16);
        for (int j = 0; j < WB; ++j) {
          const __m512 xv = _mm512_set1_ps(row[(j + kw) * C + ci]);
          acc[j][0] = _mm512_fmadd_ps(xv, w0, acc[j][0]);
          acc[j][1] = _mm512_fmadd_ps(xv, w1, acc[j][1]);
        }
      }
  }
  for (int j = 0; j < WB; ++j) {
    // Streaming stores: the output (a gigabyte at CosmoFlow size) is not read back here,
    // and skipping the read-for-ownership measured 2-4x faster than plain stores.
    _mm512_stream_ps(y + j * kCo, activate(acc[j][0], e));
    _mm512_stream_ps(y + j * kCo + 16, activate(acc[j][1], e));
  }
}

template <int C>
void forward_row(const float* const* rows, int64_t W, const float* wp, const float* bias, const Epi& e, float* y) {
  const float* r[9];
  int64_t ow = 0;
  auto shift = [&](int64_t off) {
    for (int i = 0; i < 9; ++i) r[i] = rows[i] + off * C;
  };
  for (; ow + 12 <= W; ow += 12) {
    shift(ow);
    forward_tile<C, 12>(r, wp, bias, e, y + ow * kCo);
  }
  for (; ow + 4 <= W; ow += 4) {
    shift(ow);
    forward_tile<C, 4>(r, wp, bias, e, y + ow * kCo);
  }
  for (; ow < W; ++ow) {
    shift(ow);
    forward_tile<C, 1>(r, wp, bias, e, y + ow * kCo);
  }
}

/// The (n, depth) planes [begin, end) of this thread.
void thread_range(int64_t total, int64_t& begin, int64_t& end) {
  const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
  begin = total * t / nt;
  end = total * (t + 1) / nt;
}

template <int C>
void forward_impl(const ConvGeometry& g, const float* x, const float* wp, const float* bias, const Epi& e, float* y) {
  const int64_t D = g.out[0], H = g.out[1], W = g.out[2], pd = g.pad[0];  // output extents
#pragma omp parallel
  {
    PaddedRing ring(g, x);
    int64_t begin, end;
    thread_range(g.N * D, begin, end);
    const int64_t rs = ring.row_stride();
    // With a fused activation, each output-gradient row is multiplied by the activation's
    // derivative into this L1-resident row first: one pass over gy and y instead of a
    // separate full-size activation backward (2 GB of traffic less at the first layer).
    std::vector<float> act_row(y ? size_t(W * kCo) : 0);
    for (int64_t nd = begin; nd < end; ++nd) {
      const int64_t n = nd / D, od = nd % D;
      const float* planes[3] = {ring.plane(n, od - pd), ring.plane(n, od + 1 - pd), ring.plane(n, od + 2 - pd)};
      for (int64_t oh = 0; oh < H; ++oh) {
        const float* rows[9];
        for (int kd = 0; kd < 3; ++kd)
          for (int kh = 0; kh < 3; ++kh) rows[kd * 3 + kh] = planes[kd] + (oh + kh) * rs;
        forward_row<C>(rows, W, wp, bias, e, y + (nd * H + oh) * W * kCo);
      }
    }
    _mm_sfence();
  }
}

/// Adds one output row's contribution to the [9][3][C][32] weight gradient (and bias).
/// gy * act'(y) for one output row, into `out` (act' from the sign of the stored output y:
/// relu and leaky relu with a positive slope preserve the sign).
inline void activation_grad_row(const float* gy, const float* y, int64_t n, const Epi& e, float* out) {
  for (int64_t i = 0; i < n; i += 16) {
    const __m512 g = _mm512_loadu_ps(gy + i);
    const __mmask16 neg = _mm512_cmp_ps_mask(_mm512_loadu_ps(y + i), _mm512_setzero_ps(), _CMP_LE_OQ);
    _mm512_storeu_ps(out + i, e.act == 1 ? _mm512_maskz_mov_ps(__mmask16(~neg), g) : _mm512_mask_mul_ps(g, neg, g, e.slope));
  }
}

template <int C>
void weights_row(const float* const* rows, const float* gy, const float* next_gy, int64_t W, float* gw, float* gb) {
  // The next output-gradient row is needed in a few microseconds: asking for it now lets
  // the stream from memory overlap this row's FMAs (measured 137-140 ms instead of
  // 148-157 ms for the CosmoFlow first layer on 2 threads).
  if (next_gy)
    for (int64_t i = 0; i < W * kCo; i += 16) _mm_prefetch(reinterpret_cast<const char*>(next_gy + i), _MM_HINT_T1);
  for (int r = 0; r < 9; ++r) {
    __m512 acc[3][C][2];
    float* gr = gw + r * 3 * C * kCo;
    for (int kw = 0; kw < 3; ++kw)
      for (int ci = 0; ci < C; ++ci) {
        acc[kw][ci][0] = _mm512_loadu_ps(gr + (kw * C + ci) * kCo);
        acc[kw][ci][1] = _mm512_loadu_ps(gr + (kw * C + ci) * kCo + 16);
      }
    const float* row = rows[r];
    for (int64_t ow = 0; ow < W; ++ow) {
      const __m512 g0 = _mm512_loadu_ps(gy + ow * kCo), g1 = _mm512_loadu_ps(gy + ow * kCo + 16);
      for (int kw = 0; kw < 3; ++kw)
        for (int ci = 0; ci < C; ++ci) {
          const __m512 xv = _mm512_set1_ps(row[(ow + kw) * C + ci]);
          acc[kw][ci][0] = _mm512_fmadd_ps(xv, g0, acc[kw][ci][0]);
          acc[kw][ci][1] = _mm512_fmadd_ps(xv, g1, acc[kw][ci][1]);
        }
    }
    for (int kw = 0; kw < 3; ++kw)
      for (int ci = 0; ci < C; ++ci) {
        _mm512_storeu_ps(gr + (kw * C + ci) * kCo, acc[kw][ci][0]);
        _mm512_storeu_ps(gr + (kw * C + ci) * kCo + 16, acc[kw][ci][1]);
      }
  }
  __m512 b0 = _mm512_loadu_ps(gb), b1 = _mm512_loadu_ps(gb + 16);
  for (int64_t ow = 0; ow < W; ++ow) {
    b0 = _mm512_add_ps(b0, _mm512_loadu_ps(gy + ow * kCo));
    b1 = _mm512_add_ps(b1, _mm512_loadu_ps(gy + ow * kCo + 16));
  }
  _mm512_storeu_ps(gb, b0);
  _mm512_storeu_ps(gb + 16, b1);
}

template <int C>
void weights_impl(const ConvGeometry& g, const float* x, const float* gy, const float* y, const Epi& e,
                  std::vector<float>& gw_out, std::vector<float>& gb_out) {
  const int64_t D = g.out[0], H = g.out[1], W = g.out[2], pd = g.pad[0];  // output extents
  const size_t wsize = size_t(27 * C * kCo);
  std::vector<std::vector<float>> parts;
#pragma omp parallel
  {
#pragma omp single
    parts.assign(size_t(omp_get_num_threads()), std::vector<float>(wsize + kCo, 0.0f));
    std::vector<float>& mine = parts[size_t(omp_get_thread_num())];
    PaddedRing ring(g, x);
    int64_t begin, end;
    thread_range(g.N * D, begin, end);
    const int64_t rs = ring.row_stride();
    // With a fused activation, each output-gradient row is multiplied by the activation's
    // derivative into this L1-resident row first: one pass over gy and y instead of a
    // separate full-size activation backward (2 GB of traffic less at the first layer).
    std::vector<float> act_row(y ? size_t(W * kCo) : 0);
    for (int64_t nd = begin; nd < end; ++nd) {
      const int64_t n = nd / D, od = nd % D;
      const float* planes[3] = {ring.plane(n, od - pd), ring.plane(n, od + 1 - pd), ring.plane(n, od + 2 - pd)};
      for (int64_t oh = 0; oh < H; ++oh) {
        const float* rows[9];
        for (int kd = 0; kd < 3; ++kd)
          for (int kh = 0; kh < 3; ++kh) rows[kd * 3 + kh] = planes[kd] + (oh + kh) * rs;
        const bool last = nd + 1 == g.N * D && oh + 1 == H;
        const int64_t at = (nd * H + oh) * W * kCo;
        const float* grow = gy + at;
        if (y) {
          activation_grad_row(grow, y + at, W * kCo, e, act_row.data());
          grow = act_row.data();
        }
        weights_row<C>(rows, grow, last ? nullptr : gy + at + W * kCo, W, mine.data(), mine.data() + wsize);
      }
    }
  }
  gw_out.assign(wsize, 0.0f);
  gb_out.assign(kCo, 0.0f);
  for (auto& p : parts) {
    for (size_t i = 0; i < wsize; ++i) gw_out[i] += p[i];
    for (size_t i = 0; i < size_t(kCo); ++i) gb_out[i] += p[wsize + i];
  }
}

inline float hsum(__m512 v) {
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1)));
  __m128 b = _mm512_castps512_ps128(v);
  b = _mm_add_ps(b, _mm_movehl_ps(b, b));
  b = _mm_add_ss(b, _mm_movehdup_ps(b));
  return _mm_cvtss_f32(b);
}

/// Data gradient for WB consecutive input voxels of one row: gx[w, ci] = sum over taps and
/// output channels of gy[w + pw - kw, co] * w[tap, ci, co] (pw: the padding along W). Vectors run along the 32 output
/// channels (two halves added into one accumulator per (voxel, ci)); each accumulator is
/// summed horizontally at the end. rows[r] (r = kd*3+kh) is the output-gradient row for
/// that tap or null outside the volume. With CHECK, taps that fall outside W are skipped.
template <int C, int WB, bool CHECK>
inline void data_tile(const float* const* rows, int64_t w0, int64_t pw, int64_t W, const float* wp, float* gx) {
  __m512 acc[WB][C];
  for (int j = 0; j < WB; ++j)
    for (int ci = 0; ci < C; ++ci) acc[j][ci] = _mm512_setzero_ps();
  for (int r = 0; r < 9; ++r) {
    const float* row = rows[r];
    if (!row) continue;
    for (int kw = 0; kw < 3; ++kw) {
      const float* wk = wp + (r * 3 + kw) * C * kCo;
      __m512 wlo[C], whi[C];
      for (int ci = 0; ci < C; ++ci) {
        wlo[ci] = _mm512_loadu_ps(wk + ci * kCo);
        whi[ci] = _mm512_loadu_ps(wk + ci * kCo + 16);
      }
      for (int j = 0; j < WB; ++j) {
        const int64_t ow = w0 + j + pw - kw;
        if (CHECK && (ow < 0 || ow >= W)) continue;
        const __m512 g0 = _mm512_loadu_ps(row + ow * kCo), g1 = _mm512_loadu_ps(row + ow * kCo + 16);
        for (int ci = 0; ci < C; ++ci) {
          acc[j][ci] = _mm512_fmadd_ps(g0, wlo[ci], acc[j][ci]);
          acc[j][ci] = _mm512_fmadd_ps(g1, whi[ci], acc[j][ci]);
        }
      }
    }
  }
  for (int j = 0; j < WB; ++j)
    for (int ci = 0; ci < C; ++ci) gx[j * C + ci] = hsum(acc[j][ci]);
}

template <int C>
void data_impl(const ConvGeometry& g, const float* gy, const float* wp, float* gx) {
  const int64_t D = g.in[0], H = g.in[1], W = g.in[2];                // input extents
  const int64_t oD = g.out[0], oH = g.out[1], oW = g.out[2];          // output extents
  const int64_t pd = g.pad[0], ph = g.pad[1], pw = g.pad[2];
  // Blocks of kHb rows walked through all depths: the output-gradient rows they read
  // (3 planes x kHb+2 rows, about 0.5 MB at W = 128) stay in L2, so each row comes from
  // memory about once instead of three times (once per kd) with plane-by-plane order.
  constexpr int64_t kHb = 8;
  const int64_t hblocks = (H + kHb - 1) / kHb;
#pragma omp parallel
  {
    int64_t begin, end;
    thread_range(g.N * hblocks, begin, end);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t n = item / hblocks, h0 = (item % hblocks) * kHb, h1 = std::min(H, h0 + kHb);
      for (int64_t d = 0; d < D; ++d)
        for (int64_t h = h0; h < h1; ++h) {
          const float* rows[9];
          for (int kd = 0; kd < 3; ++kd)
            for (int kh = 0; kh < 3; ++kh) {
              const int64_t od = d + pd - kd, oh = h + ph - kh;
              rows[kd * 3 + kh] =
                  (od < 0 || od >= oD || oh < 0 || oh >= oH) ? nullptr : gy + (((n * oD + od) * oH + oh) * oW) * kCo;
            }
          float* out = gx + (((n * D + d) * H + h) * W) * C;
          // Voxels [lo, hi) read output columns w + pw - 2 .. w + pw, all inside [0, oW):
          // no bounds tests there; the few at the edges test each tap.
          const int64_t lo = std::min(W, 2 - pw), hi = std::max(lo, oW - pw);
          int64_t w = 0;
          for (; w < lo; ++w) data_tile<C, 1, true>(rows, w, pw, oW, wp, out + w * C);
          for (; w + 4 <= hi; w += 4) data_tile<C, 4, false>(rows, w, pw, oW, wp, out + w * C);
          for (; w < W; ++w) data_tile<C, 1, true>(rows, w, pw, oW, wp, out + w * C);
        }
    }
  }
}

void check_inputs(const Tensor& a, const char* what) {
  HALO_CHECK_SHAPE(a.is_channels_last() && a.dtype() == DType::f32, "first-layer conv kernel: ", what,
                   " must be f32 channels-last, got ", a.str());
}

/// Weights (co, ci, kd, kh, kw) -> [kd*3+kh][kw][ci][co]: 3.5k floats, repacked per call.
std::vector<float> repack_weights(const Tensor& w, int64_t C) {
  std::vector<float> wp(size_t(27 * C * kCo));
  const float* ws = w.data<float>();
  for (int64_t co = 0; co < kCo; ++co)
    for (int64_t ci = 0; ci < C; ++ci)
      for (int64_t k = 0; k < 27; ++k) wp[size_t((k * C + ci) * kCo + co)] = ws[(co * C + ci) * 27 + k];
  return wp;
}

}  // namespace

void conv_first_layer_backward_data(const ConvGeometry& g, const Tensor& gy, const Tensor& w, const Tensor& gx) {
  check_inputs(gy, "output gradient");
  check_inputs(gx, "input gradient");
  const int64_t C = g.Cin;
  const std::vector<float> wp = repack_weights(w, C);
  const float* gp = gy.data<float>();
  float* xp = gx.data<float>();
  switch (C) {
    case 1: data_impl<1>(g, gp, wp.data(), xp); break;
    case 2: data_impl<2>(g, gp, wp.data(), xp); break;
    case 3: data_impl<3>(g, gp, wp.data(), xp); break;
    default: data_impl<4>(g, gp, wp.data(), xp); break;
  }
}

void conv_first_layer_forward(const ConvGeometry& g, const Tensor& x, const Tensor& w, const Tensor& bias,
                              const ops::ConvEpilogue& e, const Tensor& y) {
  check_inputs(x, "input");
  check_inputs(y, "output");
  const int64_t C = g.Cin;
  const std::vector<float> wp = repack_weights(w, C);
  std::vector<float> b(kCo, 0.0f);
  if (bias.defined()) std::memcpy(b.data(), bias.data<float>(), kCo * 4);
  Epi ep{e.activation == ops::Activation::none ? 0 : e.activation == ops::Activation::relu ? 1 : 2,
         _mm512_set1_ps(float(e.slope))};
  const float* xp = x.data<float>();
  float* yp = y.data<float>();
  switch (C) {
    case 1: forward_impl<1>(g, xp, wp.data(), b.data(), ep, yp); break;
    case 2: forward_impl<2>(g, xp, wp.data(), b.data(), ep, yp); break;
    case 3: forward_impl<3>(g, xp, wp.data(), b.data(), ep, yp); break;
    default: forward_impl<4>(g, xp, wp.data(), b.data(), ep, yp); break;
  }
}

void conv_first_layer_backward_weights(const ConvGeometry& g, const Tensor& x, const Tensor& gy, const Tensor& gw,
                                       const Tensor& gb, const Tensor& act_output, const ops::ConvEpilogue& epi) {
  check_inputs(x, "input");
  check_inputs(gy, "output gradient");
  const int64_t C = g.Cin;
  std::vector<float> acc, bacc;
  const float* xp = x.data<float>();
  const float* gp = gy.data<float>();
  const float* yp = nullptr;
  Epi e{0, _mm512_set1_ps(float(epi.slope))};
  if (act_output.defined() && epi.activation != ops::Activation::none) {
    check_inputs(act_output, "activation output");
    yp = act_output.data<float>();
    e.act = epi.activation == ops::Activation::relu ? 1 : 2;
  }
  switch (C) {
    case 1: weights_impl<1>(g, xp, gp, yp, e, acc, bacc); break;
    case 2: weights_impl<2>(g, xp, gp, yp, e, acc, bacc); break;
    case 3: weights_impl<3>(g, xp, gp, yp, e, acc, bacc); break;
    default: weights_impl<4>(g, xp, gp, yp, e, acc, bacc); break;
  }
  float* out = gw.data<float>();
  for (int64_t co = 0; co < kCo; ++co)
    for (int64_t ci = 0; ci < C; ++ci)
      for (int64_t k = 0; k < 27; ++k) out[(co * C + ci) * 27 + k] = acc[size_t((k * C + ci) * kCo + co)];
  if (gb.defined()) std::memcpy(gb.data<float>(), bacc.data(), kCo * 4);
}

#else  // no AVX-512: the dispatch never selects this kernel

bool first_layer_supported(const ConvGeometry&) { return false; }
void conv_first_layer_forward(const ConvGeometry&, const Tensor&, const Tensor&, const Tensor&,
                              const ops::ConvEpilogue&, const Tensor&) {
  throw Error("first-layer conv kernel: not built (needs AVX-512)");
}
void conv_first_layer_backward_weights(const ConvGeometry&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                       const Tensor&, const ops::ConvEpilogue&) {
  throw Error("first-layer conv kernel: not built (needs AVX-512)");
}
void conv_first_layer_backward_data(const ConvGeometry&, const Tensor&, const Tensor&, const Tensor&) {
  throw Error("first-layer conv kernel: not built (needs AVX-512)");
}

#endif

}  // namespace halo::kernels::cpu
