// Activation layers: ReLU, LeakyReLU(slope), Tanh, Sigmoid. Each keeps its output (not its
// input) for backward, because every one of these derivatives is a function of the output;
// the output keeps the input's memory format.
#pragma once
#include "halo/nn/layer.hpp"
#include "halo/ops/elementwise.hpp"

namespace halo::nn {

class ElementwiseActivation : public Layer {
 public:
  using Layer::forward;
  Shape output_shape(const std::vector<Shape>& inputs) const override;
  Tensor forward(const std::vector<Tensor>& inputs) override;
  std::vector<Tensor> backward(const Tensor& grad_output) override;
  double forward_flops(const std::vector<Shape>& inputs) const override;
  std::optional<std::vector<ops::OpFamily>> op_families() const override {
    return std::vector<ops::OpFamily>{ops::OpFamily::elementwise};
  }

 protected:
  ElementwiseActivation(ops::Activation kind, double slope) : kind_(kind), slope_(slope) {}

 private:
  ops::Activation kind_;
  double slope_;
  Tensor output_;  // kept in training mode for backward
};

class ReLU final : public ElementwiseActivation {
 public:
  ReLU() : ElementwiseActivation(ops::Activation::relu, 0.0) {}
  std::string type() const override { return "ReLU"; }
};

class LeakyReLU final : public ElementwiseActivation {
 public:
  /// `slope` multiplies negative inputs; it must be >= 0.
  explicit LeakyReLU(double slope = 0.01);
  std::string type() const override { return "LeakyReLU"; }
  double slope() const { return slope_; }

 private:
  double slope_;
};

class Tanh final : public ElementwiseActivation {
 public:
  Tanh() : ElementwiseActivation(ops::Activation::tanh, 0.0) {}
  std::string type() const override { return "Tanh"; }
};

class Sigmoid final : public ElementwiseActivation {
 public:
  Sigmoid() : ElementwiseActivation(ops::Activation::sigmoid, 0.0) {}
  std::string type() const override { return "Sigmoid"; }
};

}  // namespace halo::nn
