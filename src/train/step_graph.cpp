#include "train/step_graph.hpp"

#include <vector>

#include "halo/cuda/runtime.hpp"
#include "halo/util/error.hpp"
#include "halo/util/log.hpp"

namespace halo::train::detail {

namespace {

// One batch shape: the captured step and its input and output buffers.
struct Entry {
  Shape x_shape, y_shape;
  std::vector<int64_t> x_strides, y_strides;
  DType x_dtype = DType::f32, y_dtype = DType::f32;
  Tensor x, y, prediction;
  // Null until captured; declared last, so destroyed first: the graph goes before the
  // buffers its replays read.
  std::unique_ptr<cuda::Graph> graph;

  bool matches(const Tensor& bx, const Tensor& by) const {
    return bx.shape() == x_shape && by.shape() == y_shape && bx.strides() == x_strides &&
           by.strides() == y_strides && bx.dtype() == x_dtype && by.dtype() == y_dtype;
  }
};

}  // namespace

struct StepGraphs::Impl {
  int device;
  std::string who;
  cuda::Stream stream;
  cuda::Event ready, done;  // the hand-offs from and back to the caller's stream
  std::vector<std::unique_ptr<Entry>> entries;
  // The shape whose eager step ran last, with nothing in between: the layers' plans (cuDNN
  // algorithms included) are then this shape's, so its capture makes none (a search inside
  // a capture would fail it). Any other step or other work resets it.
  Entry* warmed = nullptr;
  bool said_full = false;

  Impl(int d, std::string w) : device(d), who(std::move(w)), stream(d), ready(d), done(d) {}

  Entry* find(const Tensor& x, const Tensor& y) {
    for (auto& e : entries)
      if (e->matches(x, y)) return e.get();
    return nullptr;
  }

  void capture(Entry& e, const Body& body) {
    // The input buffers come from the general cache, before the capture: they outlive it
    // and are written by the copies in front of every replay.
    e.x = Tensor::empty_strided(e.x_shape, e.x_strides, e.x_dtype, Device::cuda(device));
    e.y = Tensor::empty_strided(e.y_shape, e.y_strides, e.y_dtype, Device::cuda(device));
    e.graph = std::make_unique<cuda::Graph>(device);
    try {
      e.graph->begin_capture(stream);
      e.prediction = body(e.x, e.y);
      e.graph->end_capture();
    } catch (const Error& err) {
      e.graph.reset();  // ends a capture left open by the exception
      e.prediction = Tensor();
      throw ConfigError(str(who, ": training.cuda_graph: the training step on a batch ", to_string(e.x_shape),
                            " cannot be captured as a CUDA graph (", err.what(),
                            "); train with training.cuda_graph=false"));
    } catch (...) {
      e.graph.reset();
      e.prediction = Tensor();
      throw;
    }
    log::debug(who, ": captured the training step on a batch ", to_string(e.x_shape), " as a CUDA graph (",
               e.graph->nodes(), " nodes, ", double(e.graph->pool_bytes()) / double(1 << 20), " MiB kept)");
  }
};

StepGraphs::StepGraphs(int device, std::string who) : impl_(std::make_unique<Impl>(device, std::move(who))) {}
StepGraphs::~StepGraphs() = default;

void StepGraphs::other_work() { impl_->warmed = nullptr; }

StepGraphs::Out StepGraphs::run(const Tensor& x, const Tensor& y, const Body& body,
                                const std::function<void()>& watch) {
  Impl& I = *impl_;
  HALO_CHECK_T(ConfigError, x.device() == Device::cuda(I.device) && y.device() == Device::cuda(I.device), I.who,
               ": training.cuda_graph: the batch must be on cuda:", I.device, " (input on ", x.device().str(),
               ", target on ", y.device().str(), ")");
  const cuda::StreamHandle caller = cuda::current_stream(I.device);
  I.ready.record(caller);
  I.ready.block(I.stream.handle());
  Out out;
  {
    cuda::StreamGuard on(I.stream);
    Entry* e = I.find(x, y);
    Entry* const warmed = I.warmed;
    I.warmed = nullptr;
    if (!e || (!e->graph && warmed != e)) {
      if (e) {
        // Seen before, but other steps or work ran since: warm it up again before capturing.
      } else if (I.entries.size() < kMaxShapes) {
        auto made = std::make_unique<Entry>();
        made->x_shape = x.shape();
        made->y_shape = y.shape();
        made->x_strides = x.strides();
        made->y_strides = y.strides();
        made->x_dtype = x.dtype();
        made->y_dtype = y.dtype();
        e = made.get();
        I.entries.push_back(std::move(made));
      } else if (!I.said_full) {
        I.said_full = true;
        log::warn(I.who, ": training.cuda_graph: more than ", kMaxShapes,
                  " batch shapes; steps on a batch ", to_string(x.shape()), " and other new shapes run eagerly");
      }
      // The first step of a shape (or one beyond the limit) runs eagerly.
      out.prediction = body(x, y);
      out.target = y;
      I.warmed = e;
    } else {
      if (!e->graph) I.capture(*e, body);
      e->x.copy_(x);
      e->y.copy_(y);
      e->graph->replay(I.stream);
      watch();
      out = {e->prediction, e->y, true};
    }
  }
  I.done.record(I.stream.handle());
  I.done.block(caller);
  return out;
}

}  // namespace halo::train::detail
