// Synthetic, learnable CosmoFlow- and DeepCAM-like data (halo-data generate).
//
// CosmoFlow: a Gaussian random field made with our own FFT, whose power spectrum
// P(k) ~ k^slope exp(-(k/k_c)^2) and amplitude follow the 4 targets, turned log-normal and
// sampled as Poisson counts (int16) in 4 channels of increasing growth, so every target
// is recoverable from the field's statistics. DeepCAM: 16 smooth channels with vortex-
// shaped cyclones (pressure low, rotating wind, moisture) and long moist filaments
// (atmospheric rivers), labelled 1 and 2 pixel by pixel.
#pragma once
#include <array>
#include <complex>
#include <cstdint>
#include <string>
#include <vector>

namespace halo::data {

/// In-place 3D FFT of an n^3 complex array (n a power of two); inverse scales by 1/n^3.
void fft3d(std::vector<std::complex<double>>& a, int64_t n, bool inverse);

/// Counts (n, n, n, 4) int16 in (D,H,W,C) for targets `params` in [-1, 1]^4:
/// amplitude, spectral slope, cut-off scale, mean density.
std::vector<int16_t> cosmoflow_volume(int64_t n, const std::array<float, 4>& params, uint64_t seed);

/// A DeepCAM-like sample: data (H, W, 16) float32 and labels (H, W) in {0, 1, 2}.
void deepcam_sample(int64_t height, int64_t width, uint64_t seed, std::vector<float>& data,
                    std::vector<int32_t>& labels);

struct GenerateOptions {
  /// cosmoflow-mlperf, cosmoflow-lbann, cosmoflow-raw, deepcam, packed-cosmoflow, packed-deepcam
  std::string format = "cosmoflow-mlperf";
  std::string out_dir = ".";
  int64_t samples = 8;      ///< samples (files for raw universes)
  int64_t size = 128;       ///< CosmoFlow cube edge (raw: the universe's edge)
  int64_t height = 768, width = 1152;
  int64_t per_shard = 16;   ///< packed formats
  uint64_t seed = 0;
};

/// Writes the files (and DeepCAM's stats.h5); returns the data files' paths.
std::vector<std::string> generate(const GenerateOptions& opt);

}  // namespace halo::data
