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
  /// Throws Error on a duplicate name, an unknown input node, or a layer added twice.
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
  /// Hooks fire once per layer that has parameters, in reverse definition order, also for
  /// layers the output does not depend on (their gradients are then unchanged), so every
  /// rank announces the same parameters in the same order.
  void backward(const Tensor& grad_output);
  int add_grad_ready_hook(GradReadyHook hook);
  void remove_grad_ready_hook(int id);
  /// The parameter groups in the order backward announces them (compiles if needed); lets a
  /// gradient synchroniser lay out its buckets before the first step.
  std::vector<std::vector<Parameter*>> grad_ready_order();

  /// Keep every node's output after forward (for inspection via activation()); by default
  /// an intermediate output is released as soon as its last consumer has run, since layers
  /// keep whatever their backward needs themselves.
  void set_keep_activations(bool keep) { keep_activations_ = keep; }
  /// The output of `node` from the last forward (undefined once released).
  const Tensor& activation(int node) const;

  /// Optional profiling: called after each layer's forward (backward = false) and backward
  /// with the node name and the seconds it took (the kernels are synchronous on the CPU).
  /// Off (empty) by default; benchmarks use it for per-layer tables.
  using LayerTimer = std::function<void(const std::string& node, bool backward, double seconds)>;
  void set_layer_timer(LayerTimer timer) { layer_timer_ = std::move(timer); }

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
  /// Node id of a layer or input by name (-1 when absent).
  int find(const std::string& name) const;

 private:
  void ensure_compiled();
  void check_not_compiled(const char* what) const;
  std::vector<Parameter*> layer_parameters(int node);

  std::vector<Node> nodes_;
  int output_ = -1;
  bool compiled_ = false;
  bool training_ = true;
  Device device_ = Device::cpu();
  bool keep_activations_ = false;
  bool backward_pending_ = false;    // a training forward ran and its backward has not
  std::vector<int> input_nodes_;     // model inputs in declaration order
  std::vector<int> last_use_;        // per node: the last node consuming it (-1: none)
  std::vector<bool> needs_grad_;     // per node: some parameter lies upstream of it or in it
  Shape batch_output_shape_;         // of the last forward
  std::vector<Tensor> activations_;  // per node, from the last forward
  std::vector<std::pair<int, GradReadyHook>> hooks_;
  LayerTimer layer_timer_;
  int next_hook_id_ = 0;
};

}  // namespace halo::nn
