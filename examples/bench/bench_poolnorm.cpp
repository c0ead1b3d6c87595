// Throughput of pooling, BatchNorm and upsampling layers (forward + backward) on
// CosmoFlow/DeepCAM-like activations, in channels-last and contiguous layouts.
// Usage: halo-bench-poolnorm [iterations=5]
// Reports milliseconds per forward+backward and the effective bandwidth (bytes of the
// tensors each pass must read and write) to compare with the machine's copy bandwidth.
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>

#include "halo/nn/batchnorm.hpp"
#include "halo/nn/pool.hpp"
#include "halo/nn/upsample.hpp"
#include "halo/util/timer.hpp"
#include "args.hpp"

using namespace halo;

namespace {
void time_layer(const std::string& what, nn::Layer& layer, const Shape& shape, MemoryFormat fmt, int iters, double bytes) {
  Tensor x = Tensor::empty(shape, DType::f32, Device::cpu(), fmt);
  float* p = x.data<float>();
  for (int64_t i = 0; i < x.numel(); ++i) p[i] = float((i * 2654435761u) % 1000) * 1e-3f;
  Tensor y = layer.forward(x);
  Tensor g = Tensor::full(y.shape(), 0.5).to_memory_format(y.memory_format());
  layer.backward(g);  // warm-up: plans, allocator caches
  double fwd = 0, bwd = 0;
  for (int it = 0; it < iters; ++it) {
    Stopwatch a;
    y = layer.forward(x);
    fwd += a.seconds();
    Stopwatch b;
    layer.backward(g);
    bwd += b.seconds();
  }
  fwd /= iters;
  bwd /= iters;
  std::printf("%-44s %-14s fwd %8.2f ms  bwd %8.2f ms  fwd+bwd %6.1f GB/s\n", what.c_str(),
              fmt == MemoryFormat::channels_last ? "channels-last" : "contiguous", fwd * 1e3, bwd * 1e3,
              bytes / (fwd + bwd) * 1e-9);
}
}  // namespace

int main(int argc, char** argv) {
  if (halo::bench::help(argc, argv, "usage: halo-bench-poolnorm [iterations=5]\n  Pooling, BatchNorm and upsampling forward+backward: ms and effective GB/s.\n")) return 0;
  const int iters = argc > 1 ? std::atoi(argv[1]) : 5;
  const Shape cosmo = {4, 32, 64, 64, 64};  // a CosmoFlow activation at 1/8 of the first layer's volume
  const double xb = double(numel(cosmo)) * 4;
  for (MemoryFormat fmt : {MemoryFormat::channels_last, MemoryFormat::contiguous}) {
    nn::MaxPool3d mp(2);
    // fwd reads x, writes x/8; bwd reads dy (x/8), writes dx.
    time_layer("MaxPool3d k2 s2 f32[4,32,64,64,64]", mp, cosmo, fmt, iters, xb * (1 + 0.125 + 0.125 + 1));
    nn::AvgPool3d ap(3, 2, 1);
    time_layer("AvgPool3d k3 s2 p1 f32[4,32,64,64,64]", ap, cosmo, fmt, iters, xb * (1 + 0.125 + 0.125 + 1));
    nn::BatchNorm3d bn(32);
    // fwd: read x twice (stats, normalise), write y; bwd: read x, dy twice, write dx.
    time_layer("BatchNorm3d train f32[4,32,64,64,64]", bn, cosmo, fmt, iters, xb * (3 + 5));
  }
  const Shape cam = {2, 64, 96, 144};
  auto up = nn::Upsample::by_scale(2, 2, ops::UpsampleMode::bilinear);
  time_layer("Upsample bilinear x2 f32[2,64,96,144]", up, cam, MemoryFormat::channels_last, iters,
        double(numel(cam)) * 4 * (1 + 4 + 4 + 1));
  return 0;
}
