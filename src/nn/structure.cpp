#include "halo/nn/structure.hpp"

#include "halo/ops/concat.hpp"
#include "halo/ops/elementwise.hpp"

namespace halo::nn {

namespace {
std::vector<Shape> shapes_of(const std::vector<Tensor>& xs) {
  std::vector<Shape> s;
  for (const auto& x : xs) s.push_back(x.shape());
  return s;
}
double per_sample(const Shape& s) {
  double n = 1;
  for (size_t d = 1; d < s.size(); ++d) n *= double(s[d]);
  return n;
}
}  // namespace

// ---- Flatten ----
Shape Flatten::output_shape(const std::vector<Shape>& inputs) const {
  expect_inputs(inputs, 1);
  const Shape& s = inputs[0];
  HALO_CHECK_SHAPE(s.size() >= 2, describe(), ": input ", to_string(s), " needs a batch dimension and features");
  return {s[0], int64_t(per_sample(s))};
}

Tensor Flatten::forward(const std::vector<Tensor>& inputs) {
  Shape out = output_shape(shapes_of(inputs));
  input_shape_ = inputs[0].shape();
  // contiguous() puts channels-last data back into logical (C, spatial...) order.
  return inputs[0].contiguous().reshape(out);
}

std::vector<Tensor> Flatten::backward(const Tensor& grad_output) {
  HALO_CHECK_SHAPE(!input_shape_.empty() && grad_output.dim() == 2 && grad_output.numel() == numel(input_shape_),
                   describe(), ": gradient ", grad_output.str(), " does not match the input ", to_string(input_shape_));
  Tensor g;
  if (input_needs_grad(0)) g = grad_output.contiguous().reshape(input_shape_);
  return {g};
}

// ---- Concat ----
Shape Concat::output_shape(const std::vector<Shape>& inputs) const {
  HALO_CHECK_SHAPE(!inputs.empty(), describe(), ": needs at least one input");
  Shape out = inputs[0];
  HALO_CHECK_SHAPE(out.size() >= 2, describe(), ": input 0 ", to_string(out), " has no channel dimension");
  out[1] = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Shape& s = inputs[i];
    bool fits = s.size() == out.size() && s[0] == out[0];
    for (size_t d = 2; fits && d < s.size(); ++d) fits = s[d] == out[d];
    HALO_CHECK_SHAPE(fits, describe(), ": input ", i, " ", to_string(s), " does not fit input 0 ",
                     to_string(inputs[0]), " (all dimensions but channels must agree)");
    out[1] += s[1];
  }
  return out;
}

Tensor Concat::forward(const std::vector<Tensor>& inputs) {
  output_shape(shapes_of(inputs));
  channels_.clear();
  for (const auto& x : inputs) channels_.push_back(x.size(1));
  return ops::concat_channels(inputs);
}

std::vector<Tensor> Concat::backward(const Tensor& grad_output) {
  HALO_CHECK(!channels_.empty(), describe(), ": backward before forward");
  int64_t total = 0;
  for (auto c : channels_) total += c;
  HALO_CHECK_SHAPE(grad_output.dim() >= 2 && grad_output.size(1) == total, describe(), ": gradient ",
                   grad_output.str(), " does not have the ", total, " channels of the output");
  std::vector<Tensor> g = ops::split_channels(grad_output, channels_);
  for (size_t i = 0; i < g.size(); ++i)
    if (!input_needs_grad(i)) g[i] = Tensor();
  return g;
}

// ---- Add ----
Shape Add::output_shape(const std::vector<Shape>& inputs) const {
  HALO_CHECK_SHAPE(!inputs.empty(), describe(), ": needs at least one input");
  for (size_t i = 1; i < inputs.size(); ++i)
    HALO_CHECK_SHAPE(inputs[i] == inputs[0], describe(), ": input ", i, " ", to_string(inputs[i]),
                     " differs from input 0 ", to_string(inputs[0]));
  return inputs[0];
}

Tensor Add::forward(const std::vector<Tensor>& inputs) {
  output_shape(shapes_of(inputs));
  inputs_ = inputs.size();
  return ops::add_n(inputs);
}

std::vector<Tensor> Add::backward(const Tensor& grad_output) {
  HALO_CHECK(inputs_ > 0, describe(), ": backward before forward");
  std::vector<Tensor> g(inputs_);
  bool shared = false;
  for (size_t i = 0; i < inputs_; ++i) {
    if (!input_needs_grad(i)) continue;
    g[i] = shared ? grad_output.clone() : grad_output;
    shared = true;
  }
  return g;
}

double Add::forward_flops(const std::vector<Shape>& inputs) const {
  return inputs.empty() ? 0.0 : double(inputs.size() - 1) * per_sample(inputs[0]);
}

// ---- Scale ----
Shape Scale::output_shape(const std::vector<Shape>& inputs) const {
  expect_inputs(inputs, 1);
  return inputs[0];
}

Tensor Scale::forward(const std::vector<Tensor>& inputs) {
  expect_inputs(shapes_of(inputs), 1);
  return ops::scale(inputs[0], factor_);
}

std::vector<Tensor> Scale::backward(const Tensor& grad_output) {
  Tensor g;
  if (input_needs_grad(0)) g = ops::scale(grad_output, factor_);
  return {g};
}

double Scale::forward_flops(const std::vector<Shape>& inputs) const {
  return inputs.empty() ? 0.0 : per_sample(inputs[0]);
}

}  // namespace halo::nn
