#include "halo/data/synthetic.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "data/h5.hpp"
#include "halo/data/packed.hpp"
#include "halo/util/error.hpp"
#include "halo/util/random.hpp"

namespace halo::data {

namespace {
using cd = std::complex<double>;
constexpr double kPi = 3.141592653589793;

// Iterative radix-2 FFT over `n` elements spaced `stride` apart.
void fft1d(cd* a, int64_t n, int64_t stride, bool inverse, std::vector<cd>& tmp) {
  tmp.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) tmp[size_t(i)] = a[i * stride];
  for (int64_t i = 1, j = 0; i < n; ++i) {
    int64_t bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) std::swap(tmp[size_t(i)], tmp[size_t(j)]);
  }
  for (int64_t len = 2; len <= n; len <<= 1) {
    double ang = 2 * kPi / double(len) * (inverse ? 1 : -1);
    cd wl(std::cos(ang), std::sin(ang));
    for (int64_t i = 0; i < n; i += len) {
      cd w(1);
      for (int64_t k = 0; k < len / 2; ++k) {
        cd u = tmp[size_t(i + k)], v = tmp[size_t(i + k + len / 2)] * w;
        tmp[size_t(i + k)] = u + v;
        tmp[size_t(i + k + len / 2)] = u - v;
        w *= wl;
      }
    }
  }
  for (int64_t i = 0; i < n; ++i) a[i * stride] = tmp[size_t(i)];
}

int32_t poisson(double lambda, const CounterRng& rng, uint64_t i) {
  if (lambda > 30) return int32_t(std::max(0.0, std::round(lambda + std::sqrt(lambda) * rng.normal(i))));
  double l = std::exp(-lambda), p = 1;
  int32_t k = 0;
  for (uint64_t j = 0;; ++j) {
    p *= rng.uniform(i * 256 + j + 1);
    if (p <= l || j > 200) return k;
    ++k;
  }
}
}  // namespace

void fft3d(std::vector<cd>& a, int64_t n, bool inverse) {
  HALO_CHECK_T(ConfigError, n > 0 && (n & (n - 1)) == 0, "fft3d: edge ", n, " is not a power of two");
  HALO_CHECK_T(ConfigError, int64_t(a.size()) == n * n * n, "fft3d: ", a.size(), " values for edge ", n);
#pragma omp parallel
  {
    std::vector<cd> tmp;
#pragma omp for collapse(2)
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) fft1d(&a[size_t((i * n + j) * n)], n, 1, inverse, tmp);
#pragma omp for collapse(2)
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < n; ++k) fft1d(&a[size_t(i * n * n + k)], n, n, inverse, tmp);
#pragma omp for collapse(2)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t k = 0; k < n; ++k) fft1d(&a[size_t(j * n + k)], n, n * n, inverse, tmp);
  }
  if (inverse) {
    double s = 1.0 / double(n * n * n);
    for (auto& v : a) v *= s;
  }
}

std::vector<int16_t> cosmoflow_volume(int64_t n, const std::array<float, 4>& p, uint64_t seed) {
  const double sigma = 0.6 + 0.3 * p[0];
  const double slope = -1.75 + 0.75 * p[1];
  const double kc = (0.35 + 0.2 * p[2]) * double(n / 2);
  const double mean = std::exp(1.0 + 0.5 * p[3]);
  const size_t N = size_t(n * n * n);
  CounterRng rng(seed, 1);
  std::vector<cd> a(N);
  for (size_t i = 0; i < N; ++i) a[i] = rng.normal(i);
  fft3d(a, n, false);
  auto freq = [n](int64_t i) { return double(i <= n / 2 ? i : i - n); };
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t k = 0; k < n; ++k) {
        double kk = std::sqrt(freq(i) * freq(i) + freq(j) * freq(j) + freq(k) * freq(k));
        double amp = kk == 0 ? 0.0 : std::sqrt(std::pow(kk, slope) * std::exp(-(kk / kc) * (kk / kc)));
        a[size_t((i * n + j) * n + k)] *= amp;
      }
  fft3d(a, n, true);
  double var = 0;
  for (auto& v : a) var += v.real() * v.real();
  double inv_sd = 1.0 / std::sqrt(std::max(var / double(N), 1e-30));
  std::vector<int16_t> out(N * 4);
  CounterRng counts(seed, 2);
  for (size_t i = 0; i < N; ++i) {
    double g = a[i].real() * inv_sd;
    for (int c = 0; c < 4; ++c) {
      double s = sigma * (0.55 + 0.15 * c);
      double lambda = mean * std::exp(s * g - 0.5 * s * s);
      out[i * 4 + size_t(c)] = int16_t(std::min(poisson(lambda, counts, i * 4 + size_t(c)), 32767));
    }
  }
  return out;
}

void deepcam_sample(int64_t H, int64_t W, uint64_t seed, std::vector<float>& data, std::vector<int32_t>& labels) {
  CounterRng rng(seed, 3);
  uint64_t r = 0;
  auto U = [&] { return rng.uniform(r++); };
  const size_t P = size_t(H * W);
  std::vector<float> pres(P), u(P), v(P), moist(P);
  labels.assign(P, 0);
  // smooth background: a few long waves
  double ph[6], fx[6], fy[6];
  for (int k = 0; k < 6; ++k) ph[k] = 2 * kPi * U(), fx[k] = 1 + 3 * U(), fy[k] = 1 + 2 * U();
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x) {
      double X = double(x) / double(W), Y = double(y) / double(H);
      size_t i = size_t(y * W + x);
      pres[i] = float(1.0 + 0.1 * std::cos(2 * kPi * (fx[0] * X + fy[0] * Y) + ph[0]));
      u[i] = float(0.5 * std::sin(2 * kPi * fy[1] * Y + ph[1]));
      v[i] = float(0.3 * std::cos(2 * kPi * fx[2] * X + ph[2]));
      moist[i] = float(0.3 + 0.1 * std::sin(2 * kPi * (fx[3] * X - fy[3] * Y) + ph[3]));
    }
  // atmospheric rivers: long sinuous filaments of moisture
  int rivers = 1 + int(U() * 2);
  for (int k = 0; k < rivers; ++k) {
    double y0 = (0.2 + 0.6 * U()) * double(H), amp = (0.05 + 0.1 * U()) * double(H), f = 0.5 + U(), phs = 2 * kPi * U();
    double x0 = U() * 0.3 * double(W), x1 = x0 + (0.5 + 0.2 * U()) * double(W), w = std::max(1.5, 0.025 * double(H));
    for (int64_t x = int64_t(x0); x < std::min<int64_t>(W, int64_t(x1)); ++x) {
      double yc = y0 + amp * std::sin(2 * kPi * f * double(x) / double(W) + phs);
      for (int64_t y = std::max<int64_t>(0, int64_t(yc - 3 * w)); y < std::min<int64_t>(H, int64_t(yc + 3 * w) + 1); ++y) {
        double d = std::abs(double(y) - yc) / w;
        size_t i = size_t(y * W + x);
        moist[i] += float(1.5 * std::exp(-d * d));
        if (d < 1) labels[i] = 2;
      }
    }
  }
  // tropical cyclones: pressure low, rotating winds, moist core
  int cyclones = 1 + int(U() * 3);
  for (int k = 0; k < cyclones; ++k) {
    double cy = U() * double(H), cx = U() * double(W), rad = std::max(2.0, (0.04 + 0.03 * U()) * double(std::min(H, W)));
    for (int64_t y = std::max<int64_t>(0, int64_t(cy - 4 * rad)); y < std::min<int64_t>(H, int64_t(cy + 4 * rad) + 1); ++y)
      for (int64_t x = std::max<int64_t>(0, int64_t(cx - 4 * rad)); x < std::min<int64_t>(W, int64_t(cx + 4 * rad) + 1); ++x) {
        double dy = double(y) - cy, dx = double(x) - cx, d = std::sqrt(dx * dx + dy * dy) + 1e-9, q = d / rad;
        size_t i = size_t(y * W + x);
        double speed = 2.0 * q * std::exp(1 - q);  // peaks on the eye wall
        u[i] += float(-dy / d * speed);
        v[i] += float(dx / d * speed);
        pres[i] -= float(0.4 * std::exp(-q * q));
        moist[i] += float(std::exp(-q * q));
        if (q < 1) labels[i] = 1;
      }
  }
  data.assign(P * 16, 0.f);
  CounterRng noise(seed, 4);
  const float* base[4] = {pres.data(), u.data(), v.data(), moist.data()};
  for (size_t i = 0; i < P; ++i)
    for (int c = 0; c < 16; ++c) {
      // channels beyond the first four are scaled, offset mixtures, as different levels would be
      float val = base[c % 4][i] * (1.0f + 0.25f * float(c / 4)) + 0.1f * float(c / 4);
      data[i * 16 + size_t(c)] = val + float(0.02 * noise.normal(i * 16 + size_t(c)));
    }
}

std::vector<std::string> generate(const GenerateOptions& o) {
  namespace fs = std::filesystem;
  fs::create_directories(o.out_dir);
  std::vector<std::string> out;
  auto path = [&](const std::string& dir, const char* stem, int64_t i) {
    char b[64];
    std::snprintf(b, sizeof b, "%s-%05lld.h5", stem, (long long)i);
    return (fs::path(dir) / b).string();
  };
  auto params = [&](int64_t i) {
    CounterRng rng(o.seed, 10);
    std::array<float, 4> p;
    for (int k = 0; k < 4; ++k) p[size_t(k)] = float(2 * rng.uniform(uint64_t(i * 4 + k)) - 1);
    return p;
  };
  const std::string& f = o.format;
  if (f == "packed-cosmoflow" || f == "packed-deepcam") {
    GenerateOptions tmp = o;
    tmp.format = f == "packed-cosmoflow" ? "cosmoflow-mlperf" : "deepcam";
    tmp.out_dir = (fs::path(o.out_dir) / ".halo-generate-tmp").string();
    auto files = generate(tmp);
    Layout l = f == "packed-cosmoflow" ? cosmoflow_mlperf() : deepcam();
    std::vector<std::string> shards;
    {
      H5Dataset ds(files, l, Driver::posix);
      shards = pack(ds, o.out_dir, o.per_shard, f == "packed-cosmoflow" ? "cosmo-shard" : "deepcam-shard");
    }
    fs::remove_all(tmp.out_dir);
    return shards;
  }
  if (f == "cosmoflow-mlperf" || f == "cosmoflow-lbann" || f == "cosmoflow-raw") {
    const int64_t n = o.size;
    for (int64_t i = 0; i < o.samples; ++i) {
      auto p = params(i);
      auto vol = cosmoflow_volume(n, p, o.seed * 1000003 + uint64_t(i));
      std::string file = path(o.out_dir, f == "cosmoflow-raw" ? "universe" : "cosmo", i);
      H5Id h = create_file(file);
      std::vector<hsize_t> dhwc{hsize_t(n), hsize_t(n), hsize_t(n), 4};
      if (f == "cosmoflow-mlperf") {
        write_array(h.get(), "x", H5T_NATIVE_INT16, dhwc, vol.data());
        write_array(h.get(), "y", H5T_NATIVE_FLOAT, {4}, p.data());
      } else if (f == "cosmoflow-raw") {
        write_array(h.get(), "full", H5T_NATIVE_INT16, dhwc, vol.data());
        write_array(h.get(), "unitPar", H5T_NATIVE_FLOAT, {4}, p.data());
      } else {
        const size_t V = size_t(n * n * n);
        std::vector<float> cdhw(V * 4);
        for (size_t v = 0; v < V; ++v)
          for (size_t c = 0; c < 4; ++c) cdhw[c * V + v] = std::log1p(float(vol[v * 4 + c]));
        write_array(h.get(), "full", H5T_NATIVE_FLOAT, {4, hsize_t(n), hsize_t(n), hsize_t(n)}, cdhw.data());
        write_array(h.get(), "unitPar", H5T_NATIVE_FLOAT, {4}, p.data());
      }
      out.push_back(file);
    }
    return out;
  }
  if (f == "deepcam") {
    std::vector<float> mn(16, 1e30f), mx(16, -1e30f), data;
    std::vector<int32_t> labels;
    for (int64_t i = 0; i < o.samples; ++i) {
      deepcam_sample(o.height, o.width, o.seed * 1000003 + uint64_t(i), data, labels);
      for (size_t k = 0; k < data.size(); ++k) {
        mn[k % 16] = std::min(mn[k % 16], data[k]);
        mx[k % 16] = std::max(mx[k % 16], data[k]);
      }
      std::string file = path(o.out_dir, "deepcam", i);
      H5Id h = create_file(file);
      write_array(h.get(), "climate/data", H5T_NATIVE_FLOAT, {hsize_t(o.height), hsize_t(o.width), 16}, data.data());
      write_array(h.get(), "climate/labels_0", H5T_NATIVE_INT32, {hsize_t(o.height), hsize_t(o.width)}, labels.data());
      out.push_back(file);
    }
    H5Id s = create_file((fs::path(o.out_dir) / "stats.h5").string());
    write_array(s.get(), "climate/minval", H5T_NATIVE_FLOAT, {16}, mn.data());
    write_array(s.get(), "climate/maxval", H5T_NATIVE_FLOAT, {16}, mx.data());
    return out;
  }
  throw ConfigError(str("generate: unknown format '", f,
                        "' (cosmoflow-mlperf, cosmoflow-lbann, cosmoflow-raw, deepcam, packed-cosmoflow, packed-deepcam)"));
}

}  // namespace halo::data
