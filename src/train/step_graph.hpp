// The compute of a training step as CUDA graphs (TrainerOptions::cuda_graph), internal to the
// Trainer. Per shape of batch (input and target shapes, strides and dtypes; at most
// StepGraphs::kMaxShapes) the first step runs eagerly, so that cuDNN plans and algorithm
// searches, NCCL set-up and the allocator's first blocks happen outside any capture; the
// next step of that shape, if nothing else ran in between (else one more eager step), is
// captured (recorded, not run) and from then on every step of that shape copies its
// batch into the graph's input buffers and replays the graph: zero_grad, forward, the loss's
// gradient, backward and the gradient allreduces with their wait, in one launch, with no
// host in between. What needs the host (the loss's value, the ranks' agreement on
// non-finite steps, clipping, loss scaling, the optimizer with its learning-rate schedule)
// runs after the replay as in an eager step.
//
// The graph runs on a stream of its own: work the caller queued before (the batch's copy)
// is ordered before the step, and the caller's stream waits for the step.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "halo/tensor/tensor.hpp"

namespace halo::train::detail {

class StepGraphs {
 public:
  /// A batch shape beyond this many runs eagerly (said once): each graph keeps a step's
  /// activations.
  static constexpr size_t kMaxShapes = 4;

  /// zero_grad, forward, the loss's gradient, backward, the gradient synchroniser's wait on
  /// (x, y); returns the prediction. Must not read a value back (a capture refuses it).
  using Body = std::function<Tensor(const Tensor& x, const Tensor& y)>;

  /// `who` names the run in messages.
  StepGraphs(int device, std::string who);
  ~StepGraphs();
  StepGraphs(const StepGraphs&) = delete;
  StepGraphs& operator=(const StepGraphs&) = delete;

  struct Out {
    Tensor prediction, target;  ///< for the loss's value (the graph's buffers after a replay)
    bool replayed = false;
  };
  /// Runs the step's compute on (x, y), on the GPU of `device`, eagerly or as a replay (see
  /// above). `watch` blocks the host until the replay is done, watched (the gradient
  /// synchroniser's watch_current_stream). A step that cannot be captured is a ConfigError
  /// naming the reason.
  Out run(const Tensor& x, const Tensor& y, const Body& body, const std::function<void()>& watch);

  /// Work other than training steps ran on the model (validation): the next capture waits
  /// for another eager step of its shape.
  void other_work();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace halo::train::detail
