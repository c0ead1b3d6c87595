// One training step of a model on one GPU, timed: what the --device cuda modes of
// halo-bench-cosmoflow and halo-bench-deepcam (and halo-bench-cosmoflow-gpu) share. Each
// workload builds its model, loss, optimizer and data (cosmoflow_gpu_step.hpp,
// deepcam_gpu_step.hpp); this file moves them to the GPU, times the step and profiles it.
//
// The step: zero_grad, forward, the loss read back to the host (one synchronisation per
// step, as a trainer does), backward, the optimizer step. bf16: the input is bf16, so every
// activation and activation gradient is bf16; parameters, gradients and optimizer state
// stay f32. The median of --steps timed steps after 3 warm-up steps (the first ones choose
// cuDNN algorithms and fill the caching allocator).
//
// --graph 1 then captures the step (zero_grad, forward, the loss's gradient, backward, the
// optimizer step: the loss value is not read) as one CUDA graph on a side stream and times
// its replays the same way: the step with no launch cost and no host in the loop, beside
// the eager one in the same run. (The learning rate stays the captured one; dropout masks
// change per replay, their keys being replay values: cuda::replay_value.)
//
// --layers (or --profile 1) then runs --steps more steps with a CUDA event recorded after
// each phase (zero_grad, every layer's forward and backward, the loss and its gradient, the
// optimizer step) and prints the mean GPU time between consecutive events: the work each
// phase queued, without adding any host synchronisation inside the step. A phase whose time
// exceeds its kernels' shows the GPU waiting for the host. Then every convolution's shapes
// run through cuDNN alone (forward, backward-data, backward-filter in the step's precision,
// channels-last, median of 20): the ceiling beside each layer's measured forward and backward.
#pragma once
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>

#include "halo/config.hpp"
#include "halo/cuda/runtime.hpp"
#if HALO_ENABLE_CUDA
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <vector>

#include "halo/nn/conv.hpp"
#include "cudnn_conv_bench.hpp"  // median_ms, cuda::ConvPlan
#endif
#include "halo/nn/loss.hpp"
#include "halo/nn/model.hpp"
#include "halo/optim/optimizer.hpp"
#include "args.hpp"

namespace halo::bench {

/// One workload's step, built on the CPU.
struct GpuStep {
  std::string name;  ///< printed, e.g. "cosmoflow-128"
  int64_t batch = 1;
  nn::Model model;  ///< initialised
  std::unique_ptr<nn::Loss> loss;
  /// Builds the optimizer over the parameters once they are on the GPU.
  std::function<std::unique_ptr<optim::Optimizer>(std::vector<nn::Parameter*>)> optimizer;
  Tensor input;   ///< host, f32 (N, C, spatial...): made channels-last and cast to the precision
  Tensor target;  ///< host, the loss's target type
};

/// The options every GPU step benchmark takes: --precision f32|bf16 (default bf16),
/// --steps N (default 10), --layers or --profile 1, --graph 1.
struct GpuStepRun {
  std::string precision = "bf16";
  int steps = 10;
  bool profile = false;
  bool graph = false;  ///< also time the step as one CUDA graph
};

/// Reads GpuStepRun's options; false (after saying why) when --precision is neither f32 nor bf16.
inline bool parse_gpu_step_run(int argc, char** argv, GpuStepRun& r) {
  if (const char* p = opt_value(argc, argv, "--precision")) r.precision = p;
  r.steps = std::max(1, int(arg(argc, argv, "--steps", 10)));
  r.profile = flag(argc, argv, "--layers") || arg(argc, argv, "--profile", 0) != 0;
  r.graph = arg(argc, argv, "--graph", 0) != 0;
  if (r.precision != "f32" && r.precision != "bf16") {
    std::fprintf(stderr, "--precision must be f32 or bf16 (got '%s')\n", r.precision.c_str());
    return false;
  }
  return true;
}

/// argv without `--device <value>`: what the CPU benchmarks hand to their GPU mode.
inline std::vector<char*> without_device(int argc, char** argv) {
  std::vector<char*> rest{argv[0]};
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--device") == 0) {
      ++i;
      continue;
    }
    rest.push_back(argv[i]);
  }
  return rest;
}

/// The exit code of a GPU benchmark with no GPU to run on: 77 (a skipped test) after saying
/// why; 0 when there is one.
inline int gpu_unavailable() {
  if (!HALO_ENABLE_CUDA) {
    std::fprintf(stderr, "this build has no CUDA (configure with -DHALO_ENABLE_CUDA=ON)\n");
    return 77;
  }
  if (!cuda::available()) {
    std::fprintf(stderr, "no CUDA GPU visible\n");
    return 77;
  }
  return 0;
}

#if HALO_ENABLE_CUDA
/// Wall-clock milliseconds of `step` (which ends by waiting for the GPU): 3 untimed calls,
/// then `n` timed ones, sorted (median in the middle).
inline std::vector<double> step_times_ms(const std::function<void()>& step, int n) {
  for (int i = 0; i < 3; ++i) step();
  std::vector<double> ms;
  for (int i = 0; i < n; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    step();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms;
}

/// The step captured once as a CUDA graph and replayed --steps times (after 3 untimed
/// replays), each followed by a host synchronisation as the eager steps are.
inline void time_graph_step(GpuStep& s, optim::Optimizer& opt, const Tensor& x, const Tensor& t, const GpuStepRun& r) {
  cuda::Stream stream(0);
  cuda::StreamGuard on(stream);
  auto body = [&] {
    opt.zero_grad();
    Tensor y = s.model.forward(x);
    s.model.backward(s.loss->gradient(y, t));
    opt.step();
  };
  body();  // once eagerly on this stream, so the capture finds its blocks cached here
  stream.synchronize();
  cuda::Graph graph(0);
  try {
    graph.begin_capture(stream);
    body();
    graph.end_capture();
  } catch (const Error& e) {
    // A step that reads a value back (a synchronised BatchNorm's host reducer, say) does
    // not capture: say why and go on with the eager timing.
    std::printf("%s %s batch %lld: the step cannot be captured as a CUDA graph: %s\n", s.name.c_str(),
                r.precision.c_str(), (long long)s.batch, e.what());
    return;
  }
  const std::vector<double> ms = step_times_ms(
      [&] {
        graph.replay(stream);
        stream.synchronize();
      },
      r.steps);
  const double med = ms[ms.size() / 2];
  std::printf("%s %s batch %lld, one CUDA graph per step (%zu nodes, %.2f GiB kept): median step %.2f ms "
              "(min %.2f, max %.2f) = %.1f samples/s\n",
              s.name.c_str(), r.precision.c_str(), (long long)s.batch, graph.nodes(),
              double(graph.pool_bytes()) / double(1ull << 30), med, ms.front(), ms.back(),
              double(s.batch) * 1000.0 / med);
}

/// cuDNN alone on the shapes of every convolution of `model` (batch `batch`, dtype `dt`,
/// channels-last) beside the layer's measured mean forward and backward (`total`: the phase
/// profile's sums over `steps`).
inline void print_conv_ceilings(nn::Model& model, DType dt, int64_t batch, std::map<std::string, double>& total,
                                int steps) {
  using cudnn_conv_detail::median_ms;
  std::printf("convolutions: measured in the step against cuDNN alone on the same shapes (ms per step)\n"
              "  %-26s %8s %8s %8s %8s %6s  %s\n",
              "layer", "fwd", "cudnn", "bwd", "cudnn", "ratio", "cuDNN algorithms");
  double sum_step = 0, sum_ceiling = 0;
  const auto& nodes = model.nodes();
  for (const auto& node : nodes) {
    auto* conv = dynamic_cast<nn::ConvNd*>(node.layer.get());
    if (!conv || node.inputs.empty()) continue;
    const ops::ConvParams& cp = conv->conv_params();
    Shape in{batch}, out{batch};
    for (int64_t d : nodes[size_t(node.inputs[0])].sample_shape) in.push_back(d);
    for (int64_t d : node.sample_shape) out.push_back(d);
    try {
      // A transposed convolution is its direct adjoint's backward-data (conv_ops.cpp).
      cuda::ConvParams p;
      p.input = cp.transposed ? out : in;
      p.weight = conv->weight().value.shape();
      for (int i = 0; i < cp.spatial_dims; ++i) {
        p.stride.push_back(int(cp.stride[size_t(i)]));
        p.padding.push_back(int(cp.padding[size_t(i)]));
        p.dilation.push_back(int(cp.dilation[size_t(i)]));
      }
      p.groups = int(cp.groups);
      p.dtype = dt;
      p.format = MemoryFormat::channels_last;
      // The ceiling runs the shapes the step runs, padded channels included.
      if (const int64_t padded = cuda::padded_input_channels(p.input[1], dt, p.format, cp.transposed, cp.groups))
        p.input[1] = p.weight[1] = padded;
      // The first layer's input needs no gradient: the step runs no backward-data there.
      const bool data_grad = conv->input_needs_grad(0);
      cuda::ConvPlan plan(p);
      Tensor x = Tensor::empty(p.input, dt, Device::cuda(), p.format);
      Tensor w = Tensor::empty(p.weight, dt, Device::cuda(), p.format);
      Tensor y = Tensor::empty(plan.output_shape(), dt, Device::cuda(), p.format);
      Tensor dx = Tensor::empty_like(x), dw = Tensor::empty_like(w);
      cuda::fill(x, 0.5f);  // non-zero data: zeros can run faster than real data
      cuda::fill(w, -0.01f);
      cuda::fill(y, 0.25f);
      const float tf = cp.transposed ? median_ms([&] { plan.backward_data(y, w, dx); }, 20)
                                     : median_ms([&] { plan.forward(x, w, y); }, 20);
      const float td = !data_grad     ? 0.f
                       : cp.transposed ? median_ms([&] { plan.forward(x, w, y); }, 20)
                                       : median_ms([&] { plan.backward_data(y, w, dx); }, 20);
      const float tw = median_ms([&] { plan.backward_filter(x, y, dw); }, 20);
      const double f = total[node.name + " fwd"] / steps, b = total[node.name + " bwd"] / steps;
      sum_step += f + b;
      sum_ceiling += tf + td + tw;
      std::printf("  %-26s %8.3f %8.3f %8.3f %8.3f %6.2f  %s\n", node.name.c_str(), f, tf, b, td + tw,
                  (f + b) / (tf + td + tw), plan.algorithms().c_str());
    } catch (const std::exception& e) {
      std::printf("  %-26s cuDNN alone failed: %s\n", node.name.c_str(), e.what());
    }
  }
  std::printf("  %-26s %8.3f ms in the step, %.3f ms cuDNN alone (%.2fx)\n", "all convolutions", sum_step,
              sum_ceiling, sum_ceiling > 0 ? sum_step / sum_ceiling : 0.0);
}

/// Times the step on GPU 0 and prints "<name> <precision> batch <n>: median step ..."; with
/// GpuStepRun::profile, the phase table. Returns the exit code.
inline int run_gpu_step(GpuStep& s, const GpuStepRun& r) {
  if (int rc = gpu_unavailable()) return rc;
  const DType act = r.precision == "bf16" ? DType::bf16 : DType::f32;
  const Device dev = Device::cuda(0);
  s.model.to(dev);
  s.model.train();
  std::unique_ptr<optim::Optimizer> opt = s.optimizer(s.model.parameters());
  const Tensor x = s.input.to_memory_format(MemoryFormat::channels_last).to(act).to(dev);
  const Tensor t = s.target.to(dev);

  double last_loss = 0;
  auto step = [&] {
    opt->zero_grad();
    Tensor y = s.model.forward(x);
    last_loss = s.loss->forward(y, t);  // reads the loss back: one host sync per step, as a trainer does
    s.model.backward(s.loss->backward());
    opt->step();
    cuda::synchronize(0);
  };
  const std::vector<double> ms = step_times_ms(step, r.steps);
  const double med = ms[ms.size() / 2];
  std::printf("%s %s batch %lld: median step %.2f ms (min %.2f, max %.2f) = %.1f samples/s, loss %.4f\n",
              s.name.c_str(), r.precision.c_str(), (long long)s.batch, med, ms.front(), ms.back(),
              double(s.batch) * 1000.0 / med, last_loss);
  if (r.graph) time_graph_step(s, *opt, x, t, r);
  if (!r.profile) return 0;

  // Phase profile: events recorded on the stream the ops launch on, in step order.
  std::vector<cudaEvent_t> events;
  std::vector<std::string> names;
  size_t used = 0;
  auto mark = [&](const std::string& name) {
    if (used == events.size()) {
      cudaEvent_t e;
      cudaEventCreate(&e);
      events.push_back(e);
      names.emplace_back();
    }
    names[used] = name;
    cudaEventRecord(events[used++], cuda::current_stream(0));
  };
  s.model.set_layer_timer([&](const std::string& node, bool backward, double) {
    mark(node + (backward ? " bwd" : " fwd"));
  });
  std::vector<std::string> order;
  std::map<std::string, double> total;
  for (int k = 0; k < r.steps; ++k) {
    used = 0;
    mark("start");
    opt->zero_grad();
    mark("zero_grad");
    Tensor y = s.model.forward(x);
    last_loss = s.loss->forward(y, t);
    mark("loss");
    Tensor gy = s.loss->backward();
    mark("loss bwd");
    s.model.backward(gy);
    opt->step();
    mark("optimizer");
    cuda::synchronize(0);
    for (size_t e = 1; e < used; ++e) {
      float elapsed = 0.f;
      cudaEventElapsedTime(&elapsed, events[e - 1], events[e]);
      if (!total.count(names[e])) order.push_back(names[e]);
      total[names[e]] += double(elapsed);
    }
  }
  s.model.set_layer_timer(nullptr);
  double sum = 0;
  for (const auto& n : order) sum += total[n] / r.steps;
  std::printf("phase profile (mean GPU ms per step over %d steps, events between phases)\n", r.steps);
  for (const auto& n : order)
    std::printf("  %-28s %8.3f ms  %5.1f%%\n", n.c_str(), total[n] / r.steps, 100.0 * total[n] / r.steps / sum);
  std::printf("  %-28s %8.3f ms\n", "sum", sum);
  for (auto e : events) cudaEventDestroy(e);
  print_conv_ceilings(s.model, act, s.batch, total, r.steps);
  return 0;
}
#else
inline int run_gpu_step(GpuStep&, const GpuStepRun&) { return gpu_unavailable(); }
#endif

}  // namespace halo::bench
