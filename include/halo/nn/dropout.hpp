// Dropout with inverted scaling: in training each element is kept with probability 1 - p
// and scaled by 1 / (1 - p); in eval mode the layer is the identity.
//
// The mask is drawn from halo::CounterRng keyed by (seed, step, logical element index):
// it is the same for any thread count and any memory format, and `step` advances once per
// training forward (in a CUDA graph, at every replay: see cuda::replay_value; the layer must
// outlive the graph). Checkpoints save and restore `step()` so a resumed run draws the masks
// it would have drawn. Ranks that should draw different masks (data parallelism: different
// samples) need different seeds, e.g. seed + rank.
#pragma once
#include "halo/nn/layer.hpp"

namespace halo::nn {

class Dropout final : public Layer {
 public:
  using Layer::forward;
  Dropout(double p, uint64_t seed);
  std::string type() const override { return "Dropout"; }
  std::optional<std::vector<ops::OpFamily>> op_families() const override {
    return std::vector<ops::OpFamily>{ops::OpFamily::elementwise};
  }
  Shape output_shape(const std::vector<Shape>& inputs) const override;
  Tensor forward(const std::vector<Tensor>& inputs) override;
  std::vector<Tensor> backward(const Tensor& grad_output) override;

  double p() const { return p_; }
  uint64_t seed() const { return seed_; }
  /// Training forwards done so far: the stream the next mask is drawn from.
  uint64_t step() const { return step_; }
  void set_step(uint64_t s) { step_ = s; }

 private:
  double p_;
  uint64_t seed_;
  uint64_t step_ = 0;
  Tensor mask_;  // 0 or 1/(1-p) per element, in the input's layout; empty in eval mode
};

}  // namespace halo::nn
