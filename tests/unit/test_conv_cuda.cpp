// cuDNN convolution plan against a direct double-precision CPU convolution on random
// inputs: forward, backward data and backward filter; 2-D and 3-D; stride, padding,
// dilation and groups; f32 and bf16; contiguous and channels-last.
// Bounds (relative L2 error against the reference computed from the same rounded inputs):
// strict f32 1e-5 (float rounding only, whatever algorithm cuDNN measured fastest, FFT
// and Winograd included); bf16 1e-2 (output rounding and bf16 intermediates).
#include <catch2/catch.hpp>

#include <cmath>
#include <random>

#include "../../kernels/cuda/conv.hpp"
#include "gpu_test_skip.hpp"
#include "halo/tensor/tensor.hpp"

using namespace halo;

namespace {

struct Case {
  Shape x, w;
  std::vector<int> stride, pad, dil;
  int groups;
};

// Shapes as 3-D: a 2-D case gets depth 1 and the unit depth parameters.
struct Dims {
  int64_t n, c, d, h, w, k, cg, kd, kh, kw, od, oh, ow;
  int sd, sh, sw, pd, ph, pw, dd, dh, dw, g;
};

Dims dims_of(const Case& cs, const Shape& out) {
  const bool two = cs.x.size() == 4;
  auto sp = [&](const Shape& s, int i) { return two ? (i == 0 ? 1 : s[size_t(i + 1)]) : s[size_t(i + 2)]; };
  auto pv = [&](const std::vector<int>& v, int i, int unit) { return two ? (i == 0 ? unit : v[size_t(i - 1)]) : v[size_t(i)]; };
  Dims d{};
  d.n = cs.x[0]; d.c = cs.x[1]; d.d = sp(cs.x, 0); d.h = sp(cs.x, 1); d.w = sp(cs.x, 2);
  d.k = cs.w[0]; d.cg = cs.w[1]; d.kd = sp(cs.w, 0); d.kh = sp(cs.w, 1); d.kw = sp(cs.w, 2);
  d.od = sp(out, 0); d.oh = sp(out, 1); d.ow = sp(out, 2);
  d.sd = pv(cs.stride, 0, 1); d.sh = pv(cs.stride, 1, 1); d.sw = pv(cs.stride, 2, 1);
  d.pd = pv(cs.pad, 0, 0); d.ph = pv(cs.pad, 1, 0); d.pw = pv(cs.pad, 2, 0);
  d.dd = pv(cs.dil, 0, 1); d.dh = pv(cs.dil, 1, 1); d.dw = pv(cs.dil, 2, 1);
  d.g = cs.groups;
  return d;
}

// Visits every (output element, weight element, input element) triple of the convolution.
template <class F>
void for_each_tap(const Dims& d, F&& f) {
  const int64_t kg = d.k / d.g;
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t k = 0; k < d.k; ++k)
      for (int64_t oz = 0; oz < d.od; ++oz)
        for (int64_t oy = 0; oy < d.oh; ++oy)
          for (int64_t ox = 0; ox < d.ow; ++ox) {
            const int64_t yi = (((n * d.k + k) * d.od + oz) * d.oh + oy) * d.ow + ox;
            const int64_t g = k / kg;
            for (int64_t c = 0; c < d.cg; ++c)
              for (int64_t a = 0; a < d.kd; ++a) {
                const int64_t iz = oz * d.sd - d.pd + a * d.dd;
                if (iz < 0 || iz >= d.d) continue;
                for (int64_t b = 0; b < d.kh; ++b) {
                  const int64_t iy = oy * d.sh - d.ph + b * d.dh;
                  if (iy < 0 || iy >= d.h) continue;
                  for (int64_t e = 0; e < d.kw; ++e) {
                    const int64_t ix = ox * d.sw - d.pw + e * d.dw;
                    if (ix < 0 || ix >= d.w) continue;
                    const int64_t wi = (((k * d.cg + c) * d.kd + a) * d.kh + b) * d.kw + e;
                    const int64_t xi = (((n * d.c + g * d.cg + c) * d.d + iz) * d.h + iy) * d.w + ix;
                    f(yi, wi, xi);
                  }
                }
              }
          }
}

Tensor random_tensor(const Shape& s, uint32_t seed, DType dt, MemoryFormat fmt) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> v(size_t(numel(s)));
  for (auto& x : v) x = nd(rng);
  return Tensor::from_vector(v, s).to(dt).to_memory_format(fmt);
}

double rel_l2(const std::vector<double>& a, const std::vector<double>& ref) {
  REQUIRE(a.size() == ref.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    REQUIRE(std::isfinite(a[i]));  // also catches elements left unwritten (poisoned with NaN)
    num += (a[i] - ref[i]) * (a[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  return std::sqrt(num / den);
}

Tensor poisoned(const Shape& s, DType dt, MemoryFormat fmt) {
  Tensor t = Tensor::empty(s, dt, Device::cuda(), fmt);
  t.fill_(std::nan(""));
  return t;
}

void check_case(const Case& cs, DType dt, MemoryFormat fmt, uint32_t seed) {
  cuda::ConvParams p;
  p.input = cs.x;
  p.weight = cs.w;
  p.stride = cs.stride;
  p.padding = cs.pad;
  p.dilation = cs.dil;
  p.groups = cs.groups;
  p.dtype = dt;
  p.format = fmt;
  cuda::ConvPlan plan(p);
  const Shape out = plan.output_shape();
  const Dims d = dims_of(cs, out);
  Tensor xh = random_tensor(cs.x, seed, dt, fmt), wh = random_tensor(cs.w, seed + 1, dt, fmt);
  Tensor dyh = random_tensor(out, seed + 2, dt, fmt);
  const auto x = xh.to_vector<double>(), w = wh.to_vector<double>(), dy = dyh.to_vector<double>();
  std::vector<double> y_ref(size_t(numel(out))), dx_ref(x.size()), dw_ref(w.size());
  for_each_tap(d, [&](int64_t yi, int64_t wi, int64_t xi) {
    y_ref[size_t(yi)] += w[size_t(wi)] * x[size_t(xi)];
    dx_ref[size_t(xi)] += w[size_t(wi)] * dy[size_t(yi)];
    dw_ref[size_t(wi)] += x[size_t(xi)] * dy[size_t(yi)];
  });
  const double tol = dt == DType::f32 ? 1e-5 : 1e-2;
  Tensor xd = xh.to(Device::cuda()), wd = wh.to(Device::cuda()), dyd = dyh.to(Device::cuda());
  Tensor y = poisoned(out, dt, fmt), dx = poisoned(cs.x, dt, fmt), dw = poisoned(cs.w, dt, fmt);
  plan.forward(xd, wd, y);
  plan.backward_data(dyd, wd, dx);
  plan.backward_filter(xd, dyd, dw);
  INFO(plan.algorithms());
  CHECK(rel_l2(y.to_vector<double>(), y_ref) < tol);
  CHECK(rel_l2(dx.to_vector<double>(), dx_ref) < tol);
  CHECK(rel_l2(dw.to_vector<double>(), dw_ref) < tol);
  // beta = 1 accumulates the filter gradient (micro-batches).
  plan.backward_filter(xd, dyd, dw, 1.f);
  for (auto& v : dw_ref) v *= 2;
  CHECK(rel_l2(dw.to_vector<double>(), dw_ref) < tol);
}

}  // namespace

TEST_CASE("cuDNN convolution matches the direct CPU convolution") {
  const std::vector<Case> cases = {
      {{2, 4, 9, 10, 11}, {8, 4, 3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, 1},     // CosmoFlow-like 3-D
      {{2, 6, 8, 9, 7}, {4, 3, 3, 2, 3}, {2, 1, 2}, {1, 0, 1}, {1, 2, 1}, 2},       // stride, dilation, groups
      {{3, 8, 13, 12}, {16, 8, 3, 3}, {1, 1}, {1, 1}, {1, 1}, 1},                   // 2-D
      {{2, 8, 17, 15}, {8, 2, 3, 3}, {2, 2}, {2, 2}, {2, 2}, 4},                     // 2-D atrous, grouped
  };
  uint32_t seed = 1000;
  for (size_t i = 0; i < cases.size(); ++i)
    for (DType dt : {DType::f32, DType::bf16})
      for (MemoryFormat fmt : {MemoryFormat::channels_last, MemoryFormat::contiguous}) {
        INFO("case " << i << " " << name(dt) << (fmt == MemoryFormat::channels_last ? " channels_last" : " contiguous"));
        check_case(cases[i], dt, fmt, seed);
        seed += 3;
      }
}

TEST_CASE("cuDNN convolution plans share one algorithm search per shape and check their arguments") {
  cuda::ConvParams p;
  p.input = {2, 4, 8, 8, 8};
  p.weight = {8, 4, 3, 3, 3};
  p.padding = {1, 1, 1};
  p.dtype = DType::bf16;
  cuda::ConvPlan a(p), b(p);
  CHECK(a.output_shape() == Shape{2, 8, 8, 8, 8});
  CHECK(a.flops() == Approx(2.0 * 4 * 27 * 2 * 8 * 512));
  Tensor x = random_tensor(p.input, 1, DType::bf16, MemoryFormat::channels_last).to(Device::cuda());
  Tensor w = random_tensor(p.weight, 2, DType::bf16, MemoryFormat::channels_last).to(Device::cuda());
  Tensor y = Tensor::empty(a.output_shape(), DType::bf16, Device::cuda(), MemoryFormat::channels_last);
  CHECK(a.algorithms().find("fwd=?") != std::string::npos);
  a.forward(x, w, y);
  CHECK(a.algorithms().find("fwd=?") == std::string::npos);
  CHECK(b.algorithms().find("fwd=?") != std::string::npos);
  b.forward(x, w, y);
  CHECK(b.algorithms() == a.algorithms());  // served from the process-wide cache

  Tensor x_nc = x.to_memory_format(MemoryFormat::contiguous);
  CHECK_THROWS_WITH(a.forward(x_nc, w, y), Catch::Contains("memory format"));
  CHECK_THROWS_AS(a.forward(x.to(DType::f32), w, y), ShapeError);
  cuda::ConvParams bad = p;
  bad.weight = {8, 3, 3, 3, 3};
  CHECK_THROWS_WITH(cuda::ConvPlan(bad), Catch::Contains("channels do not match"));
  bad = p;
  bad.input = {2, 4, 2, 2, 2};  // smaller than the kernel without padding
  bad.padding = {0, 0, 0};
  CHECK_THROWS_AS(cuda::ConvPlan(bad), ShapeError);
}

TEST_CASE("cuDNN heuristic algorithm choice and TF32 give results within their precision") {
  Case cs{{2, 8, 10, 10, 10}, {16, 8, 3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, 1};
  for (bool tf32 : {false, true}) {
    cuda::ConvParams p;
    p.input = cs.x;
    p.weight = cs.w;
    p.padding = cs.pad;
    p.allow_tf32 = tf32;
    p.measure = false;
    cuda::ConvPlan plan(p);
    Tensor xh = random_tensor(cs.x, 7, DType::f32, MemoryFormat::channels_last);
    Tensor wh = random_tensor(cs.w, 8, DType::f32, MemoryFormat::channels_last);
    const auto x = xh.to_vector<double>(), w = wh.to_vector<double>();
    std::vector<double> ref(size_t(numel(plan.output_shape())));
    for_each_tap(dims_of(cs, plan.output_shape()),
                 [&](int64_t yi, int64_t wi, int64_t xi) { ref[size_t(yi)] += w[size_t(wi)] * x[size_t(xi)]; });
    Tensor y = poisoned(plan.output_shape(), DType::f32, MemoryFormat::channels_last);
    plan.forward(xh.to(Device::cuda()), wh.to(Device::cuda()), y);
    INFO("tf32 " << tf32 << " " << plan.algorithms());
    // TF32 rounds the operands to 10-bit mantissas: about 3e-4 relative over 216 products.
    CHECK(rel_l2(y.to_vector<double>(), ref) < (tf32 ? 3e-3 : 1e-5));
  }
}
