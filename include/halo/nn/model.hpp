// Model: a static DAG of layers. Build it with the graph builder (`add(layer, inputs)`) or
// as a Sequential (`append(layer)`), then `compile()` once: shapes are inferred and checked,
// parameters get their full names, and the layers learn which inputs need gradients.
//
// Backward walks the DAG in reverse; as soon as a layer's parameter gradients are
// complete, the grad-ready hooks fire with them — the distributed gradient synchroniser
// listens there to start allreduces while backward goes on.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "halo/nn/layer.hpp"

namespace halo::nn {

class Model {
 public:
  struct Node {
    LayerPtr layer;            ///< null for a model input
    std::vector<int> inputs;   ///< node ids
    std::string name;
    Shape sample_shape;        ///< output shape without the batch dimension (after compile)
  };
  using GradReadyHook = std::function<void(const std::vector<Parameter*>& ready)>;

  /// Declares a model input; `sample_shape` excludes the batch dimension. Returns its node id.
  int input(const Shape& sample_shape, const std::string& name = "input");
  /// Adds a layer fed by the given nodes. An empty name becomes "<type><index>", e.g. "conv3d2".
  int add(LayerPtr layer, const std::vector<int>& inputs, const std::string& name = "");
  int add(LayerPtr layer, int input, const std::string& name = "") { return add(std::move(layer), std::vector<int>{input}, name); }
  /// Sequential style: adds a layer fed by the most recently added node.
  int append(LayerPtr layer, const std::string& name = "");
  /// Marks the output node (default: the last node added).
  void set_output(int node);

  /// Infers and checks shapes, names parameters "<layer>/<param>", fixes the backward order.
  /// Throws ShapeError naming the layer and shapes on a mismatch.
  void compile();
  bool compiled() const { return compiled_; }

  /// Initialises every parameter from `seed` (Kaiming for convolutions and dense layers
  /// unless the layer says otherwise); results do not depend on the thread count.
  void init(uint64_t seed);

  Tensor forward(const Tensor& x);
  Tensor forward(const std::vector<Tensor>& inputs);
  /// Backpropagates dLoss/dOutput, accumulating into parameter gradients (call zero_grad first).
  void backward(const Tensor& grad_output);
  int add_grad_ready_hook(GradReadyHook hook);
  void remove_grad_ready_hook(int id);

  void zero_grad();
  void train(bool on = true);
  void eval() { train(false); }
  bool training() const { return training_; }
  void to(Device dev);
  Device device() const { return device_; }

  /// Parameters and buffers in definition order (the same on every rank).
  std::vector<Parameter*> parameters();
  std::vector<Buffer*> buffers();
  int64_t parameter_count();
  /// Forward FLOPs of one sample (sum over layers).
  double forward_flops_per_sample() const;
  /// Table of layers: name, type, output shape, parameter count, forward FLOPs per sample.
  std::string summary() const;

  const std::vector<Node>& nodes() const { return nodes_; }
  Layer& layer(const std::string& name);
  Shape output_sample_shape() const;

 private:
  std::vector<Node> nodes_;
  int output_ = -1;
  bool compiled_ = false;
  bool training_ = true;
  Device device_ = Device::cpu();
  std::vector<Tensor> activations_;  // per node, from the last forward
  std::vector<std::pair<int, GradReadyHook>> hooks_;
  int next_hook_id_ = 0;
};

}  // namespace halo::nn
