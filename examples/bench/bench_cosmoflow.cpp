// halo-bench-cosmoflow: samples/s of the full CosmoFlow training step on the CPU and its
// share of the compute floor.
//
//   halo-bench-cosmoflow [--size 128] [--batch 4] [--steps 5] [--warmup 1] [--threads T]
//                        [--layers]   (per-layer forward/backward table)
//                        [--precision f32|bf16]   (bf16: mixed precision, f32 master weights;
//                        the f32 step is measured in the same run for the speed-up)
//   halo-bench-cosmoflow --device cuda [--precision f32|bf16] ...   (the GPU step, as
//                        halo-bench-cosmoflow-gpu; cosmoflow_gpu_step.hpp)
//
// One step = zero_grad, forward, MSE loss, backward with the gradient synchroniser on the
// model's grad-ready hooks (a real allreduce even on one rank), wait, SGD momentum step.
//
// FLOPs per step count what is computed: forward of every layer, and in backward the weight
// gradient of every layer with parameters plus the data gradient wherever the input needs
// one (not for conv1: the data needs no gradient); parameter-free layers count their
// forward FLOPs again. The peak is the higher of an FMA loop on all threads and the fastest
// large convolution (conv5 forward) measured in the same run, as in halo-bench-conv, so that
// no percentage can exceed 100 (in bf16: the bf16 dot-product loop and conv5 in bf16).
// floor = FLOPs / peak; floor_pct = floor / step time. The last line is
// `samples_per_s=<x> floor_pct=<y>`, with ` speedup_vs_f32=<z>` in bf16.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "halo/dist/communicator.hpp"
#include "halo/dist/grad_sync.hpp"
#include "halo/models/cosmoflow.hpp"
#include "halo/nn/losses.hpp"
#include "halo/optim/sgd.hpp"
#include "halo/util/threads.hpp"
#include "halo/util/timer.hpp"
#include "args.hpp"
#include "inputs.hpp"
#include "cosmoflow_gpu_step.hpp"
#include "peak.hpp"

using namespace halo;

namespace {

using bench::arg;
using bench::flag;
using bench::opt_value;

}  // namespace

int main(int argc, char** argv) {
  if (halo::bench::help(argc, argv, "usage: halo-bench-cosmoflow [--size 128] [--batch 4] [--steps 5] [--warmup 1] [--threads T] [--layers]\n"
      "                            [--precision f32|bf16]\n"
      "       halo-bench-cosmoflow --device cuda [--precision f32|bf16] [--batch 4] [--steps 10] [--size 128] [--layers]\n"
      "  Samples/s of the full CosmoFlow training step and its share of the compute floor (CPU), or the\n"
      "  step on one GPU (the same as halo-bench-cosmoflow-gpu). Last line (CPU): samples_per_s=<x> floor_pct=<y>\n"
      "  (bf16: speedup_vs_f32=<z> too).\n")) return 0;
  if (const char* dev = opt_value(argc, argv, "--device"); dev && std::strcmp(dev, "cpu") != 0) {
    // The GPU step: everything but --device goes to the GPU benchmark.
    std::vector<char*> rest = bench::without_device(argc, argv);
    return bench::cosmoflow_gpu_main(int(rest.size()), rest.data());
  }
  dist::MpiSession mpi(&argc, &argv);
  dist::Communicator comm;
  const int64_t size = int64_t(arg(argc, argv, "--size", 128));
  const int64_t batch = int64_t(arg(argc, argv, "--batch", 4));
  const int steps = int(arg(argc, argv, "--steps", 5));
  const int warmup = int(arg(argc, argv, "--warmup", 1));
  if (opt_value(argc, argv, "--threads")) set_num_threads(int(arg(argc, argv, "--threads", 2)));
  const bool per_layer = flag(argc, argv, "--layers");
  const char* precision = opt_value(argc, argv, "--precision");
  const bool bf16 = precision && std::strcmp(precision, "bf16") == 0;
  if (precision && !bf16 && std::strcmp(precision, "f32") != 0) {
    std::fprintf(stderr, "halo-bench-cosmoflow: --precision must be f32 or bf16, got '%s'\n", precision);
    return 2;
  }
  const bool root = comm.rank() == 0;

  models::CosmoFlowOptions mo;
  mo.input_size = size;
  mo.dropout_seed = uint64_t(comm.rank());
  nn::Model model = models::cosmoflow(mo);
  model.init(1);
  auto params = model.parameters();
  dist::GradientSynchronizer sync(comm, params, {});
  sync.attach(model);
  optim::SGDOptions so;
  so.lr = 1e-4;
  so.momentum = 0.9;
  optim::SGD sgd(params, so);
  nn::MSELoss loss;

  // FLOPs actually computed per step (see the header comment).
  double flops = 0;
  {
    Shape in{batch, mo.in_channels, size, size, size};
    std::map<int, Shape> shapes;
    const auto& nodes = model.nodes();
    for (size_t i = 0; i < nodes.size(); ++i) {
      Shape s{batch};
      s.insert(s.end(), nodes[i].sample_shape.begin(), nodes[i].sample_shape.end());
      shapes[int(i)] = s;
      if (!nodes[i].layer) continue;
      std::vector<Shape> ins;
      for (int j : nodes[i].inputs) ins.push_back(shapes[j]);
      const double f = nodes[i].layer->forward_flops(ins);
      const bool has_params = !nodes[i].layer->parameters().empty();
      const bool data_grad = nodes[i].layer->input_needs_grad(0);
      flops += double(batch) * (f + (has_params ? f * (data_grad ? 2.0 : 1.0) : f));  // f is per sample
    }
  }

  const Tensor x32 = bench::uniform_channels_last({batch, mo.in_channels, size, size, size}, 11 + uint64_t(comm.rank()));
  Tensor y = Tensor::zeros({batch, mo.outputs});
  std::map<std::string, std::pair<double, double>> layer_time;  // node -> (forward, backward), summed
  struct Times {
    double fwd = 0, bwd = 0, wait = 0, opt = 0, step = 0;
  };
  // Warm-up then timed steps on input x (its dtype is the step's precision); per-layer times
  // are taken for `layers` only.
  auto run_steps = [&](const Tensor& x, bool layers) {
    Times t;
    for (int s = 0; s < warmup + steps; ++s) {
      const bool timed = s >= warmup;
      if (timed && layers)
        model.set_layer_timer([&](const std::string& n, bool bwd, double sec) {
          (bwd ? layer_time[n].second : layer_time[n].first) += sec;
        });
      comm.barrier();
      const double t0 = now_seconds();
      model.zero_grad();
      loss.forward(model.forward(x), y);
      const double t1 = now_seconds();
      model.backward(loss.backward());
      const double t2 = now_seconds();
      sync.wait();
      const double t3 = now_seconds();
      sgd.step();
      const double t4 = now_seconds();
      if (timed) {
        t.fwd += t1 - t0;
        t.bwd += t2 - t1;
        t.wait += t3 - t2;
        t.opt += t4 - t3;
        t.step += t4 - t0;
      }
    }
    model.set_layer_timer({});
    t.fwd /= steps, t.bwd /= steps, t.wait /= steps, t.opt /= steps, t.step /= steps;
    return t;
  };
  // bf16: the same model fed bf16 (mixed precision: f32 master weights), and the f32 step
  // measured in the same run for the speed-up.
  const Tensor x = bf16 ? x32.to(DType::bf16) : x32;
  const Times t = run_steps(x, per_layer);
  const double f32_step = bf16 ? run_steps(x32, false).step : t.step;
  const double t_fwd = t.fwd, t_bwd = t.bwd, t_wait = t.wait, t_opt = t.opt, t_step = t.step;

  // Ceilings, measured after the steps so the step runs on a cool, uncontended cache.
  const double fma_peak = bench::measure_fma_peak();
  double conv_rate = 0;
  {
    nn::Layer& conv5 = model.layer("conv" + std::to_string(mo.conv_layers));
    const int64_t cin = mo.base_filters << (mo.conv_layers - 2), edge = size >> (mo.conv_layers - 1);
    Tensor x5 = bench::uniform_channels_last({batch, cin, edge, edge, edge}, 3);
    if (bf16) x5 = x5.to(DType::bf16);
    const double f5 = double(batch) * conv5.forward_flops({x5.shape()});  // per sample x batch
    conv5.set_training(false);
    for (int r = 0; r < 6; ++r) {
      const double t0 = now_seconds();
      conv5.forward(x5);
      const double t = now_seconds() - t0;
      if (r > 0) conv_rate = std::max(conv_rate, f5 / t);
    }
    conv5.set_training(true);
  }
  // bf16: the ceiling is the bf16 dot-product loop (twice the FMA loop's rate where the CPU
  // has AVX512_BF16), or conv5's own bf16 rate if that is higher.
  const double bf16_peak = bf16 ? bench::measure_bf16_peak() : 0;
  const double peak = std::max(bf16 ? bf16_peak : fma_peak, conv_rate);
  const double floor_s = flops / peak;
  const double sps = double(batch) * comm.size() / t_step;

  if (root) {
    std::printf("# CosmoFlow-%lld step, batch %lld per rank, %d rank(s) x %d thread(s), %d timed steps after %d "
                "warm-up\n",
                (long long)size, (long long)batch, comm.size(), num_threads(), steps, warmup);
    if (bf16)
      std::printf("peak: bf16 dot-product loop %.1f GFLOP/s (FMA loop %.1f), conv%d bf16 forward %.1f GFLOP/s -> "
                  "%.1f GFLOP/s\n",
                  bf16_peak * 1e-9, fma_peak * 1e-9, mo.conv_layers, conv_rate * 1e-9, peak * 1e-9);
    else
      std::printf("peak: FMA loop %.1f GFLOP/s, conv%d forward %.1f GFLOP/s -> %.1f GFLOP/s\n", fma_peak * 1e-9,
                  mo.conv_layers, conv_rate * 1e-9, peak * 1e-9);
    std::printf("step %.3f s = forward %.3f + backward %.3f + allreduce wait %.4f + optimizer %.4f\n", t_step, t_fwd,
                t_bwd, t_wait, t_opt);
    std::printf("computed %.1f GFLOP per step -> %.1f GFLOP/s; floor %.3f s\n", flops * 1e-9, flops / t_step * 1e-9,
                floor_s);
    if (per_layer) {
      std::printf("%-12s %10s %10s\n", "layer", "fwd_ms", "bwd_ms");
      for (const auto& n : model.nodes())
        if (n.layer && layer_time.count(n.name))
          std::printf("%-12s %10.2f %10.2f\n", n.name.c_str(), layer_time[n.name].first / steps * 1e3,
                      layer_time[n.name].second / steps * 1e3);
    }
    if (bf16)
      std::printf("f32 step in the same run %.3f s\nsamples_per_s=%.3f floor_pct=%.1f speedup_vs_f32=%.2f\n", f32_step,
                  sps, 100.0 * floor_s / t_step, f32_step / t_step);
    else
      std::printf("samples_per_s=%.3f floor_pct=%.1f\n", sps, 100.0 * floor_s / t_step);
  }
  return 0;
}
