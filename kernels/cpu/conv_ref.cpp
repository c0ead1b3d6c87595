// Plain reference convolutions: loops written for clarity, parallel over independent
// outputs so that every element has exactly one writer (results do not depend on the
// thread count). The fast kernels are tested against these; f64 always runs here.
#include "cpu/conv.hpp"

namespace halo::kernels::cpu {
namespace {

template <class T>
void forward(const ConvGeometry& g, const T* x, const T* w, T* y) {
  const int64_t cig = g.Cin / g.G, cog = g.Cout / g.G;
  const int64_t ID = g.in[0], IH = g.in[1], IW = g.in[2];
  const int64_t OD = g.out[0], OH = g.out[1], OW = g.out[2];
  const int64_t KD = g.k[0], KH = g.k[1], KW = g.k[2];
  const int64_t isz = g.in_volume(), osz = g.out_volume(), ksz = g.k_volume();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t oc = 0; oc < g.Cout; ++oc) {
      const int64_t grp = oc / cog;
      T* yo = y + (n * g.Cout + oc) * osz;
      const T* wo = w + oc * cig * ksz;
      for (int64_t od = 0; od < OD; ++od)
        for (int64_t oh = 0; oh < OH; ++oh)
          for (int64_t ow = 0; ow < OW; ++ow) {
            T acc = 0;
            for (int64_t ic = 0; ic < cig; ++ic) {
              const T* xi = x + (n * g.Cin + grp * cig + ic) * isz;
              const T* wi = wo + ic * ksz;
              for (int64_t kd = 0; kd < KD; ++kd) {
                const int64_t id = od * g.stride[0] - g.pad[0] + kd * g.dil[0];
                if (id < 0 || id >= ID) continue;
                for (int64_t kh = 0; kh < KH; ++kh) {
                  const int64_t ih = oh * g.stride[1] - g.pad[1] + kh * g.dil[1];
                  if (ih < 0 || ih >= IH) continue;
                  for (int64_t kw = 0; kw < KW; ++kw) {
                    const int64_t iw = ow * g.stride[2] - g.pad[2] + kw * g.dil[2];
                    if (iw < 0 || iw >= IW) continue;
                    acc += xi[(id * IH + ih) * IW + iw] * wi[(kd * KH + kh) * KW + kw];
                  }
                }
              }
            }
            yo[(od * OH + oh) * OW + ow] = acc;
          }
    }
}

// Scatter form: each (n, input channel) plane is owned by one thread.
template <class T>
void backward_data(const ConvGeometry& g, const T* gy, const T* w, T* gx) {
  const int64_t cig = g.Cin / g.G, cog = g.Cout / g.G;
  const int64_t ID = g.in[0], IH = g.in[1], IW = g.in[2];
  const int64_t OD = g.out[0], OH = g.out[1], OW = g.out[2];
  const int64_t KD = g.k[0], KH = g.k[1], KW = g.k[2];
  const int64_t isz = g.in_volume(), osz = g.out_volume(), ksz = g.k_volume();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t c = 0; c < g.Cin; ++c) {
      const int64_t grp = c / cig, icl = c % cig;
      T* gxi = gx + (n * g.Cin + c) * isz;
      for (int64_t i = 0; i < isz; ++i) gxi[i] = 0;
      for (int64_t ocl = 0; ocl < cog; ++ocl) {
        const int64_t oc = grp * cog + ocl;
        const T* gyo = gy + (n * g.Cout + oc) * osz;
        const T* wi = w + (oc * cig + icl) * ksz;
        for (int64_t od = 0; od < OD; ++od)
          for (int64_t oh = 0; oh < OH; ++oh)
            for (int64_t ow = 0; ow < OW; ++ow) {
              const T v = gyo[(od * OH + oh) * OW + ow];
              for (int64_t kd = 0; kd < KD; ++kd) {
                const int64_t id = od * g.stride[0] - g.pad[0] + kd * g.dil[0];
                if (id < 0 || id >= ID) continue;
                for (int64_t kh = 0; kh < KH; ++kh) {
                  const int64_t ih = oh * g.stride[1] - g.pad[1] + kh * g.dil[1];
                  if (ih < 0 || ih >= IH) continue;
                  for (int64_t kw = 0; kw < KW; ++kw) {
                    const int64_t iw = ow * g.stride[2] - g.pad[2] + kw * g.dil[2];
                    if (iw < 0 || iw >= IW) continue;
                    gxi[(id * IH + ih) * IW + iw] += v * wi[(kd * KH + kh) * KW + kw];
                  }
                }
              }
            }
      }
    }
}

template <class T>
void backward_weights(const ConvGeometry& g, const T* x, const T* gy, T* gw) {
  const int64_t cig = g.Cin / g.G, cog = g.Cout / g.G;
  const int64_t ID = g.in[0], IH = g.in[1], IW = g.in[2];
  const int64_t OD = g.out[0], OH = g.out[1], OW = g.out[2];
  const int64_t KD = g.k[0], KH = g.k[1], KW = g.k[2];
  const int64_t isz = g.in_volume(), osz = g.out_volume(), ksz = g.k_volume();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t oc = 0; oc < g.Cout; ++oc)
    for (int64_t icl = 0; icl < cig; ++icl) {
      const int64_t c = (oc / cog) * cig + icl;
      for (int64_t kd = 0; kd < KD; ++kd)
        for (int64_t kh = 0; kh < KH; ++kh)
          for (int64_t kw = 0; kw < KW; ++kw) {
            T acc = 0;
            for (int64_t n = 0; n < g.N; ++n) {
              const T* xi = x + (n * g.Cin + c) * isz;
              const T* gyo = gy + (n * g.Cout + oc) * osz;
              for (int64_t od = 0; od < OD; ++od) {
                const int64_t id = od * g.stride[0] - g.pad[0] + kd * g.dil[0];
                if (id < 0 || id >= ID) continue;
                for (int64_t oh = 0; oh < OH; ++oh) {
                  const int64_t ih = oh * g.stride[1] - g.pad[1] + kh * g.dil[1];
                  if (ih < 0 || ih >= IH) continue;
                  for (int64_t ow = 0; ow < OW; ++ow) {
                    const int64_t iw = ow * g.stride[2] - g.pad[2] + kw * g.dil[2];
                    if (iw < 0 || iw >= IW) continue;
                    acc += xi[(id * IH + ih) * IW + iw] * gyo[(od * OH + oh) * OW + ow];
                  }
                }
              }
            }
            gw[(oc * cig + icl) * ksz + (kd * KH + kh) * KW + kw] = acc;
          }
    }
}

void check_contiguous(const Tensor& t, const char* what) {
  HALO_CHECK_SHAPE(t.is_contiguous(), "conv reference kernel: ", what, " must be contiguous, got ", t.str());
}

}  // namespace

void conv_ref_forward(const ConvGeometry& g, const Tensor& x, const Tensor& w, const Tensor& y) {
  check_contiguous(x, "input");
  check_contiguous(w, "weight");
  check_contiguous(y, "output");
  HALO_DISPATCH_FLOAT(x.dtype(), "conv forward (reference)",
                      [&] { forward<T>(g, x.data<T>(), w.data<T>(), y.data<T>()); });
}

void conv_ref_backward_data(const ConvGeometry& g, const Tensor& gy, const Tensor& w, const Tensor& gx) {
  check_contiguous(gy, "output gradient");
  check_contiguous(w, "weight");
  check_contiguous(gx, "input gradient");
  HALO_DISPATCH_FLOAT(gy.dtype(), "conv backward-data (reference)",
                      [&] { backward_data<T>(g, gy.data<T>(), w.data<T>(), gx.data<T>()); });
}

void conv_ref_backward_weights(const ConvGeometry& g, const Tensor& x, const Tensor& gy, const Tensor& gw) {
  check_contiguous(x, "input");
  check_contiguous(gy, "output gradient");
  check_contiguous(gw, "weight gradient");
  HALO_DISPATCH_FLOAT(x.dtype(), "conv backward-weights (reference)",
                      [&] { backward_weights<T>(g, x.data<T>(), gy.data<T>(), gw.data<T>()); });
}

}  // namespace halo::kernels::cpu
