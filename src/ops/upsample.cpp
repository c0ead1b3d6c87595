// Upsampling: output shapes, then the kernels of the input's device (op_table.hpp).
#include "halo/ops/upsample.hpp"

#include "op_table.hpp"

namespace halo::ops {
namespace {
std::string dims_str(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "x" : "") + std::to_string(v[i]);
  return s;
}
}  // namespace

std::string UpsampleConfig::str() const {
  const char* m = mode == UpsampleMode::nearest ? "nearest" : "bilinear";
  std::string s = size.empty() ? halo::str(m, " x", dims_str(scale)) : halo::str(m, " to ", dims_str(size));
  if (mode == UpsampleMode::bilinear && align_corners) s += " (align_corners)";
  return s;
}

Shape upsample_output_shape(const Shape& in, const UpsampleConfig& cfg, const std::string& who) {
  const size_t sd = in.size() >= 2 ? in.size() - 2 : 0;
  HALO_CHECK_SHAPE(sd == 2 || sd == 3, who, ": input ", to_string(in), " should be (N, C, H, W) or (N, C, D, H, W)");
  HALO_CHECK_SHAPE(cfg.mode == UpsampleMode::nearest || sd == 2, who, ": bilinear upsampling needs a 2D input (N, C, H, W), got ",
                   to_string(in));
  const std::vector<int64_t>& v = cfg.size.empty() ? cfg.scale : cfg.size;
  HALO_CHECK_SHAPE(v.size() == sd, who, ": ", cfg.str(), " needs one ", cfg.size.empty() ? "scale factor" : "size",
                   " per spatial dimension of input ", to_string(in));
  Shape out = {in[0], in[1]};
  for (size_t d = 0; d < sd; ++d) {
    HALO_CHECK_SHAPE(v[d] >= 1 && in[2 + d] >= 1, who, ": ", cfg.str(), " on input ", to_string(in),
                     ": sizes and factors must be positive");
    out.push_back(cfg.size.empty() ? in[2 + d] * v[d] : v[d]);
  }
  return out;
}

Tensor upsample_forward(const Tensor& x, const UpsampleConfig& cfg, const std::string& who) {
  return upsample_kernels(device_of(x), who).forward(x, cfg, who);
}

Tensor upsample_backward(const Tensor& dy, const Shape& input_shape, const UpsampleConfig& cfg, MemoryFormat format,
                         const std::string& who) {
  return upsample_kernels(device_of(dy), who).backward(dy, input_shape, cfg, format, who);
}

}  // namespace halo::ops
