// halo-bench-deepcam: samples/s of the full DeepCAM (DeepLabv3+) training step on the CPU
// and its share of the roofline floor of that step.
//
//   halo-bench-deepcam [--height 768] [--width 1152] [--batch 1] [--steps 2] [--warmup 2]
//                      [--middle 16] [--channel-scale 1] [--threads T]
//                      [--layers]   (per-layer-type table)
//                      [--nodes]    (also every layer: forward and backward ms, floor ms)
//   halo-bench-deepcam --device cuda [--precision f32|bf16] [--batch 2] [--steps 10] [--height 768]
//                      [--width 1152] [--middle 16] [--channel-scale 1] [--layers]
//                      (the step on one GPU: deepcam_gpu_step.hpp, gpu_step_bench.hpp)
//
// One step = zero_grad, forward, WeightedCrossEntropy loss at full resolution, backward,
// LAMB step, on one rank (the allreduce is measured by halo-bench-allreduce). The first
// `--warmup` steps plan the convolutions and fill the caching allocator; they are not timed.
//
// Roofline floor: for every pass of every layer (forward, backward-data where the input
// needs a gradient, backward-weights where the layer has parameters) the larger of
//   FLOPs / peak FLOP rate        (FMA loop on all threads, peak.hpp)
//   minimum bytes / bandwidth     (triad, peak.hpp; each input and weight read once, each
//                                  output written once)
// both ceilings measured in the same run after the steps. Depthwise convolutions, batch norm,
// activations, Add, Concat, pooling and upsampling come out bound by bytes. The loss (read
// logits and labels, write the logit gradient) and the optimizer (read parameter, gradient
// and two moments, write parameter and moments) count by bytes too. Time the model spends
// outside layers (summing gradients of nodes with two consumers) has no floor of its own.
// floor_pct = floor / measured step. The last line is `samples_per_s=<x> floor_pct=<y>`.
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "halo/models/deeplabv3.hpp"
#include "halo/nn/conv.hpp"
#include "halo/nn/losses.hpp"
#include "halo/optim/lamb.hpp"
#include "halo/tensor/allocator.hpp"
#include "halo/util/random.hpp"
#include "halo/util/threads.hpp"
#include "halo/util/timer.hpp"
#include "args.hpp"
#include "deepcam_gpu_step.hpp"
#include "peak.hpp"

using namespace halo;

namespace {

using bench::arg;
using bench::flag;
using bench::opt_value;

double elems(const Shape& s) {
  double n = 1;
  for (int64_t d : s) n *= double(d);
  return n;
}

/// The row of the per-type table a layer belongs to.
std::string kind_of(nn::Layer& l) {
  if (auto* c = dynamic_cast<nn::ConvNd*>(&l)) {
    const auto& p = c->conv_params();
    const Shape& w = c->weight().value.shape();
    if (p.transposed) return "conv transposed 3x3/2";
    if (p.groups > 1) return p.dilation[0] > 1 ? "conv depthwise 3x3 dil" : "conv depthwise 3x3";
    if (w[2] == 1) return "conv 1x1";
    return p.dilation[0] > 1 ? "conv 3x3 dilated" : "conv 3x3";
  }
  return l.type();
}

struct Floor {
  double flops = 0, bytes = 0, seconds = 0;
};

/// Adds one pass: the larger of its compute and its memory time.
void add_pass(Floor& f, double flops, double bytes, double peak, double bw) {
  f.flops += flops;
  f.bytes += bytes;
  f.seconds += std::max(flops / peak, bytes / bw);
}

struct Usage {
  double sys = 0, user = 0;
  long minflt = 0, majflt = 0;
};
Usage usage_now() {
  rusage r{};
  getrusage(RUSAGE_SELF, &r);
  Usage u;
  u.sys = double(r.ru_stime.tv_sec) + 1e-6 * double(r.ru_stime.tv_usec);
  u.user = double(r.ru_utime.tv_sec) + 1e-6 * double(r.ru_utime.tv_usec);
  u.minflt = r.ru_minflt;
  u.majflt = r.ru_majflt;
  return u;
}
long max_rss_mib() {
  rusage r{};
  getrusage(RUSAGE_SELF, &r);
  return r.ru_maxrss / 1024;
}

}  // namespace

int main(int argc, char** argv) {
  if (halo::bench::help(argc, argv, "usage: halo-bench-deepcam [--height 768] [--width 1152] [--batch 1] [--steps 2] [--warmup 2] [--middle 16]\n                          [--channel-scale 1] [--threads T] [--layers] [--nodes] [--precision f32|bf16]\n       halo-bench-deepcam --device cuda [--precision f32|bf16] [--batch 2] [--steps 10] [--height 768]\n                          [--width 1152] [--middle 16] [--channel-scale 1] [--layers]\n  Samples/s of the full DeepCAM (DeepLabv3+) training step and its share of the roofline floor (CPU),\n  or the step on one GPU.\n  Last line: samples_per_s=<x> floor_pct=<y> (bf16: samples_per_s=<x> speedup_vs_f32=<z>).\n")) return 0;
  if (const char* dev = opt_value(argc, argv, "--device"); dev && std::strcmp(dev, "cpu") != 0) {
    std::vector<char*> rest = bench::without_device(argc, argv);
    return bench::deepcam_gpu_main(int(rest.size()), rest.data());
  }
  const int64_t height = int64_t(arg(argc, argv, "--height", 768));
  const int64_t width = int64_t(arg(argc, argv, "--width", 1152));
  const int64_t batch = int64_t(arg(argc, argv, "--batch", 1));
  const int steps = std::max(1, int(arg(argc, argv, "--steps", 2)));
  // Two warm-up steps: the first plans the convolutions and fills the allocator's cache, the
  // second still allocates what the first step's saved tensors held while the next forward
  // ran; from the third on a step allocates nothing (checked below: system allocations).
  const int warmup = std::max(0, int(arg(argc, argv, "--warmup", 2)));
  if (opt_value(argc, argv, "--threads")) set_num_threads(int(arg(argc, argv, "--threads", 2)));
  const bool per_node = flag(argc, argv, "--nodes");
  const bool per_layer = flag(argc, argv, "--layers") || per_node;
  const char* precision = opt_value(argc, argv, "--precision");
  const bool bf16 = precision && std::strcmp(precision, "bf16") == 0;
  if (precision && !bf16 && std::strcmp(precision, "f32") != 0) {
    std::fprintf(stderr, "halo-bench-deepcam: --precision must be f32 or bf16, got '%s'\n", precision);
    return 2;
  }

  models::DeepLabV3PlusOptions mo;
  mo.height = height;
  mo.width = width;
  mo.middle_blocks = int(arg(argc, argv, "--middle", 16));
  mo.channel_scale = arg(argc, argv, "--channel-scale", 1.0);
  nn::Model model = models::deeplabv3_plus(mo);
  model.init(1);
  auto params = model.parameters();
  optim::LAMBOptions lo;
  lo.lr = 1e-3;
  lo.weight_decay = 1e-2;
  optim::LAMB lamb(params, lo);
  // Class weights of the order DeepCAM uses (background rare-class imbalance).
  nn::WeightedCrossEntropy loss({1.0, 20.0, 3.0});

  Tensor x = Tensor::empty({batch, mo.in_channels, height, width}, DType::f32, Device::cpu(),
                           MemoryFormat::channels_last);
  Tensor labels = Tensor::empty({batch, height, width}, DType::i32, Device::cpu());
  {
    CounterRng rng(11);
    float* p = x.data<float>();
    for (int64_t i = 0; i < x.numel(); ++i) p[i] = float(rng.uniform(uint64_t(i)));
    int32_t* l = labels.data<int32_t>();
    for (int64_t i = 0; i < labels.numel(); ++i) l[i] = int32_t(rng.uniform(uint64_t(i) + (1ull << 40)) * 2.999);
  }

  // bf16 (mixed precision): the same model fed bf16, and the f32 step timed after it.
  const Tensor x32 = x;
  if (bf16) x = x.to(DType::bf16);
  auto step_once = [&](const Tensor& in) {
    model.zero_grad();
    Tensor g;
    {
      Tensor logits = model.forward(in);
      loss.forward(logits, labels);
      g = loss.backward();
    }
    model.backward(g);
    lamb.step();
  };

  std::map<std::string, std::pair<double, double>> layer_time;  // node -> (forward, backward), summed
  double t_fwd = 0, t_loss = 0, t_bwd = 0, t_opt = 0, t_step = 0;
  Usage u0;
  AllocatorStats a0;
  for (int s = 0; s < warmup + steps; ++s) {
    const bool timed = s >= warmup;
    if (timed && s == warmup) {
      if (per_layer)
        model.set_layer_timer([&](const std::string& n, bool bwd, double sec) {
          (bwd ? layer_time[n].second : layer_time[n].first) += sec;
        });
      u0 = usage_now();
      a0 = allocator_for(Device::cpu()).stats();
    }
    const double t0 = now_seconds();
    model.zero_grad();
    Tensor logits = model.forward(x);
    const double t1 = now_seconds();
    loss.forward(logits, labels);
    Tensor g = loss.backward();
    logits = Tensor();
    const double t2 = now_seconds();
    model.backward(g);
    g = Tensor();
    const double t3 = now_seconds();
    lamb.step();
    const double t4 = now_seconds();
    if (timed) {
      t_fwd += t1 - t0;
      t_loss += t2 - t1;
      t_bwd += t3 - t2;
      t_opt += t4 - t3;
      t_step += t4 - t0;
    }
  }
  const Usage u1 = usage_now();
  const AllocatorStats a1 = allocator_for(Device::cpu()).stats();
  model.set_layer_timer({});
  t_fwd /= steps, t_loss /= steps, t_bwd /= steps, t_opt /= steps, t_step /= steps;

  if (bf16) {
    // The roofline below counts 4-byte activations; in bf16 only the speed-up is reported.
    for (int s = 0; s < warmup; ++s) step_once(x32);
    double t32 = 0;
    for (int s = 0; s < steps; ++s) {
      const double t0 = now_seconds();
      step_once(x32);
      t32 += now_seconds() - t0;
    }
    t32 /= steps;
    double n_params = 0;
    for (auto* p : params) n_params += double(p->value.numel());
    std::printf("# DeepCAM %lldx%lld, batch %lld, %d thread(s), %.0f parameters; bf16 activations (f32 master weights)\n",
                (long long)height, (long long)width, (long long)batch, num_threads(), n_params);
    std::printf("step %.3f s = forward %.3f + loss %.3f + backward %.3f + LAMB %.3f; f32 step in the same run %.3f s\n",
                t_step, t_fwd, t_loss, t_bwd, t_opt, t32);
    std::printf("samples_per_s=%.4f speedup_vs_f32=%.2f\n", double(batch) / t_step, t32 / t_step);
    return 0;
  }

  // Ceilings, measured after the steps.
  const double peak = bench::measure_fma_peak();
  const double bw = bench::measure_stream_bandwidth();

  // Floors per layer, grouped by kind.
  std::map<std::string, Floor> floor_of_kind;
  std::map<std::string, double> time_of_kind;
  std::map<std::string, int> count_of_kind;
  Floor total;
  double layers_time = 0;
  {
    const auto& nodes = model.nodes();
    std::vector<Shape> shapes(nodes.size());
    for (size_t i = 0; i < nodes.size(); ++i) {
      Shape s{batch};
      s.insert(s.end(), nodes[i].sample_shape.begin(), nodes[i].sample_shape.end());
      shapes[i] = s;
      if (!nodes[i].layer) continue;
      nn::Layer& l = *nodes[i].layer;
      std::vector<Shape> ins;
      double in_elems = 0;
      for (int j : nodes[i].inputs) {
        ins.push_back(shapes[size_t(j)]);
        in_elems += elems(shapes[size_t(j)]);
      }
      const double out_elems = elems(s);
      double w_elems = 0;
      for (auto& p : l.parameters()) w_elems += double(p.value.numel());
      const double f = double(batch) * l.forward_flops(ins);  // forward_flops is per sample
      const std::string kind = kind_of(l);
      Floor fl;
      add_pass(fl, f, 4 * (in_elems + w_elems + out_elems), peak, bw);  // forward
      bool data_grad = false;
      for (size_t k = 0; k < ins.size(); ++k) data_grad = data_grad || l.input_needs_grad(k);
      if (!l.parameters().empty()) {
        // backward-weights: read input and output gradient, write the weight gradient
        add_pass(fl, f, 4 * (in_elems + out_elems + w_elems), peak, bw);
        if (data_grad) add_pass(fl, f, 4 * (out_elems + w_elems + in_elems), peak, bw);
      } else if (data_grad) {
        // parameter-free: read the output gradient (and the saved input or output where the
        // derivative needs it), write the input gradients
        const bool needs_saved = kind == "ReLU";
        add_pass(fl, f, 4 * (out_elems + in_elems + (needs_saved ? out_elems : 0)), peak, bw);
      }
      if (kind.rfind("BatchNorm", 0) == 0) {
        // backward also reads the saved input: x and dy in, dx out
        fl.bytes += 4 * in_elems;
        fl.seconds += 4 * in_elems / bw;
      }
      Floor& k = floor_of_kind[kind];
      k.flops += fl.flops, k.bytes += fl.bytes, k.seconds += fl.seconds;
      total.flops += fl.flops, total.bytes += fl.bytes, total.seconds += fl.seconds;
      count_of_kind[kind]++;
      if (layer_time.count(nodes[i].name)) {
        const auto& lt = layer_time[nodes[i].name];
        const double t = (lt.first + lt.second) / steps;
        if (per_node)
          std::printf("node %-28s %-24s fwd %8.2f bwd %8.2f floor %8.2f ms\n", nodes[i].name.c_str(), kind.c_str(),
                      lt.first / steps * 1e3, lt.second / steps * 1e3, fl.seconds * 1e3);
        time_of_kind[kind] += t;
        layers_time += t;
      }
    }
  }
  // Loss: logits and labels read once, logit gradient written once.
  const double pixels = double(batch * height * width);
  Floor loss_floor;
  add_pass(loss_floor, 0, pixels * (4.0 * double(mo.classes) * 2 + 4), peak, bw);
  // LAMB: parameter, gradient, two moments read; parameter and moments written.
  double n_params = 0;
  for (auto* p : params) n_params += double(p->value.numel());
  Floor opt_floor;
  add_pass(opt_floor, 0, 4.0 * 7 * n_params, peak, bw);
  const double floor_s = total.seconds + loss_floor.seconds + opt_floor.seconds;
  const double sps = double(batch) / t_step;

  std::printf("# DeepCAM DeepLabv3+ %lldx%lld, batch %lld, 1 rank x %d thread(s), %.0f parameters; "
              "%d timed steady-state step(s) after %d warm-up step(s) (excluded)\n",
              (long long)height, (long long)width, (long long)batch, num_threads(), n_params, steps,
              warmup);
  std::printf("ceilings: FMA loop %.1f GFLOP/s, triad %.1f GB/s\n", peak * 1e-9, bw * 1e-9);
  std::printf("step %.3f s = forward %.3f + loss %.3f + backward %.3f + LAMB %.3f\n", t_step, t_fwd, t_loss, t_bwd,
              t_opt);
  std::printf("per timed step: sys %.2f s, user %.2f s, minor faults %ld, major faults %ld; max RSS %ld MiB\n",
              (u1.sys - u0.sys) / steps, (u1.user - u0.user) / steps, (u1.minflt - u0.minflt) / steps,
              (u1.majflt - u0.majflt) / steps, max_rss_mib());
  std::printf("caching allocator per timed step: %.1f system allocations, %.0f cache hits; %.2f GB in use at the "
              "peak, %.2f GB cached now\n",
              double(a1.system_allocations - a0.system_allocations) / steps, double(a1.cache_hits - a0.cache_hits) / steps,
              double(a1.peak_bytes_in_use) * 1e-9, double(a1.bytes_cached) * 1e-9);
  std::printf("layers: %.1f GFLOP, %.2f GB minimum traffic per step; floor %.3f s (layers %.3f + loss %.4f + "
              "LAMB %.4f)\n",
              total.flops * 1e-9, total.bytes * 1e-9, floor_s, total.seconds, loss_floor.seconds, opt_floor.seconds);
  if (per_layer) {
    std::printf("%-24s %5s %10s %10s %8s %9s %8s\n", "layer type", "count", "time_ms", "floor_ms", "%floor",
                "GFLOP", "GB");
    std::vector<std::pair<double, std::string>> order;
    for (const auto& [k, t] : time_of_kind) order.push_back({-t, k});
    std::sort(order.begin(), order.end());
    for (const auto& [neg, k] : order) {
      const Floor& f = floor_of_kind[k];
      std::printf("%-24s %5d %10.1f %10.1f %8.1f %9.1f %8.2f\n", k.c_str(), count_of_kind[k], -neg * 1e3,
                  f.seconds * 1e3, 100.0 * f.seconds / -neg, f.flops * 1e-9, f.bytes * 1e-9);
    }
    std::printf("%-24s %5d %10.1f %10.1f %8.1f\n", "loss (fwd+bwd)", 1, t_loss * 1e3, loss_floor.seconds * 1e3,
                100.0 * loss_floor.seconds / t_loss);
    std::printf("%-24s %5d %10.1f %10.1f %8.1f\n", "LAMB step", 1, t_opt * 1e3, opt_floor.seconds * 1e3,
                100.0 * opt_floor.seconds / t_opt);
    std::printf("%-24s %5s %10.1f %10s\n", "outside layers", "", (t_fwd + t_bwd - layers_time) * 1e3, "-");
  }
  std::printf("samples_per_s=%.4f floor_pct=%.1f\n", sps, 100.0 * floor_s / t_step);
  return 0;
}
