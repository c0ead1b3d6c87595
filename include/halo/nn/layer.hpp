// The layer interface. A layer owns its parameters and whatever forward must keep for
// backward; it computes through halo::ops, whose dispatch picks the kernel from the
// tensors' device, so layers never mention a backend.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "halo/nn/parameter.hpp"
#include "halo/ops/registry.hpp"
#include "halo/tensor/tensor.hpp"

namespace halo::nn {

class Layer {
 public:
  virtual ~Layer() = default;

  /// Short type name for summaries and errors ("Conv3d").
  virtual std::string type() const = 0;
  /// Output shape for the given input shapes; throws ShapeError naming the layer on a mismatch.
  virtual Shape output_shape(const std::vector<Shape>& inputs) const = 0;
  /// Computes the output; in training mode it keeps what backward needs.
  virtual Tensor forward(const std::vector<Tensor>& inputs) = 0;
  /// Given dLoss/dOutput, accumulates parameter gradients and returns dLoss/dInput for each
  /// input (an undefined Tensor where `input_needs_grad(i)` is false).
  virtual std::vector<Tensor> backward(const Tensor& grad_output) = 0;
  /// Multiply-adds ×2 of one forward pass for one sample (for summaries and benchmarks).
  virtual double forward_flops(const std::vector<Shape>& inputs) const {
    (void)inputs;
    return 0.0;
  }
  /// Initialises parameters from `seed` with nn::init (called by Model::init after the
  /// parameters have their full names). Layers without parameters keep the default.
  virtual void init_parameters(uint64_t seed) { (void)seed; }
  /// Moves parameters and buffers (and any cached plan) to a device.
  virtual void to(Device dev);
  /// The op families (halo/ops/registry.hpp) that forward and backward call. The built-in
  /// layers list theirs; a layer that lists none (nullopt, the default) is taken to run on
  /// the CPU only. A custom layer computing only through halo::ops lists the families of
  /// the ops it calls, and then runs wherever they have kernels.
  virtual std::optional<std::vector<ops::OpFamily>> op_families() const { return std::nullopt; }
  /// Whether forward and backward can run on `device`: always on the CPU; elsewhere when
  /// op_families() is known and each family has kernels for the device's kind in this build.
  bool runs_on(Device device) const;
  /// The rule behind runs_on: op_families() is known and `available` holds for each family.
  bool runs_with(const std::function<bool(ops::OpFamily)>& available) const;

  std::vector<Parameter>& parameters() { return params_; }
  std::vector<Buffer>& buffers() { return buffers_; }
  const std::string& name() const { return name_; }
  void set_name(const std::string& n) { name_ = n; }
  bool training() const { return training_; }
  virtual void set_training(bool t) { training_ = t; }
  bool input_needs_grad(size_t i) const { return i >= needs_grad_.size() || needs_grad_[i]; }
  void set_input_needs_grad(std::vector<bool> v) { needs_grad_ = std::move(v); }
  /// "Conv3d 'conv1'": how errors name this layer.
  std::string describe() const { return type() + " '" + name_ + "'"; }

  /// Single-input convenience.
  Tensor forward(const Tensor& x) { return forward(std::vector<Tensor>{x}); }

 protected:
  /// Registers a parameter under a local name ("weight"); the Model prefixes the layer name.
  Parameter& add_parameter(const std::string& local_name, Tensor value, bool weight_decay = true);
  Buffer& add_buffer(const std::string& local_name, Tensor value);
  /// Throws ShapeError "<describe()>: expected N inputs, got M".
  void expect_inputs(const std::vector<Shape>& inputs, size_t n) const;

  std::vector<Parameter> params_;
  std::vector<Buffer> buffers_;

 private:
  std::string name_;
  bool training_ = true;
  std::vector<bool> needs_grad_;
};

using LayerPtr = std::shared_ptr<Layer>;

}  // namespace halo::nn
