// halo-bench-conv: GFLOP/s of the CosmoFlow convolutions (forward, backward-data,
// backward-weights) against an FP32 peak measured in the same run.
//
// The peak is the higher of (a) an FMA loop over all threads (16 independent 512-bit FMA
// chains per thread, no memory traffic), re-measured before every layer, best kept, and
// (b) the fastest convolution pass of the run. (a) is the textbook peak, but on this machine
// the best oneDNN passes run a few percent above it (the cores seem to hold a higher clock
// on mixed load/FMA code than on pure FMA), so (b) keeps every percentage <= 100.
//
//   halo-bench-conv [--threads 2] [--batch 4] [--size 128] [--reps 3] [--layer L (only that one)]
//                   [--compare-blocked (also time oneDNN on its blocked formats, without reorders)]
//                   [--layout automatic|channels_last|blocked (oneDNN activation layout per pass)]
//                   [--precision f32|bf16 (bf16 activations, f32 weights; f32 timed alongside)]
// Last line: worst_pct=<worst single pass> total_pct=<all passes: total flops / total time>,
// and in bf16 speedup_vs_f32=<f32 time of the training passes / their bf16 time>.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "halo/config.hpp"
#include "halo/ops/conv.hpp"
#include "halo/util/random.hpp"
#include "halo/util/threads.hpp"
#include "peak.hpp"

#if HALO_ENABLE_ONEDNN
#include <dnnl.hpp>
#include "args.hpp"
#include "cudnn_conv_bench.hpp"
#endif

using namespace halo;

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

/// FMA-loop peak of all threads (shared with the other benchmarks).
double measure_peak() { return bench::measure_fma_peak(); }

Tensor random_cl(const Shape& s, uint64_t seed, float scale) {
  Tensor t = Tensor::empty(s, DType::f32, Device::cpu(), MemoryFormat::channels_last);
  float* p = t.data<float>();
  CounterRng rng(seed);
  const int64_t n = t.numel();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) p[i] = scale * float(2 * rng.uniform(uint64_t(i)) - 1);
  return t;
}

template <class F>
double best_time(int reps, F&& f) {
  f();  // warm-up: primitive creation, first touch
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    double t0 = now();
    f();
    best = std::min(best, now() - t0);
  }
  return best;
}

#if HALO_ENABLE_ONEDNN
/// The same convolution on oneDNN with every tensor in the format oneDNN prefers (blocked
/// nCdhw16c activations), timed without the reorders that a channels-last model would need
/// around it: the best case for blocked formats, to decide between them and nspc.
double blocked_time(int pass, const Shape& xs, const Shape& ws, const Shape& ys, int reps) {
  using dnnl::memory;
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream st(eng);
  auto any = [](const Shape& s) { return memory::desc(memory::dims(s.begin(), s.end()), memory::data_type::f32, memory::format_tag::any); };
  const memory::desc bias({ys[1]}, memory::data_type::f32, memory::format_tag::x);
  const memory::dims one{1, 1, 1}, zero{0, 0, 0};
  dnnl::convolution_forward::desc fd(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, any(xs),
                                     any(ws), bias, any(ys), one, zero, one, one);
  dnnl::post_ops po;
  po.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.3f, 0.0f);
  dnnl::primitive_attr attr;
  attr.set_post_ops(po);
  dnnl::convolution_forward::primitive_desc fpd(fd, attr, eng);
  auto touched = [&](const memory::desc& md) {
    memory m(md, eng);
    std::memset(m.get_data_handle(), 0, md.get_size());
    return m;
  };
  memory src = touched(fpd.src_desc()), wei = touched(fpd.weights_desc()), dst = touched(fpd.dst_desc()),
         b = touched(fpd.bias_desc());
  if (pass == 0) {
    dnnl::convolution_forward prim(fpd);
    return best_time(reps, [&] {
      prim.execute(st, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_BIAS, b}, {DNNL_ARG_DST, dst}});
      st.wait();
    });
  }
  if (pass == 1) {
    dnnl::convolution_backward_data::desc bd(dnnl::algorithm::convolution_direct, any(xs), any(ws), any(ys), one, zero,
                                             one, one);
    dnnl::convolution_backward_data::primitive_desc pd(bd, eng, fpd);
    memory gx = touched(pd.diff_src_desc()), w2 = touched(pd.weights_desc()), gy = touched(pd.diff_dst_desc());
    dnnl::convolution_backward_data prim(pd);
    return best_time(reps, [&] {
      prim.execute(st, {{DNNL_ARG_DIFF_DST, gy}, {DNNL_ARG_WEIGHTS, w2}, {DNNL_ARG_DIFF_SRC, gx}});
      st.wait();
    });
  }
  dnnl::convolution_backward_weights::desc bd(dnnl::algorithm::convolution_direct, any(xs), any(ws), bias, any(ys),
                                              one, zero, one, one);
  dnnl::convolution_backward_weights::primitive_desc pd(bd, eng, fpd);
  memory x2 = touched(pd.src_desc()), gy = touched(pd.diff_dst_desc()), gw = touched(pd.diff_weights_desc()),
         gb = touched(pd.diff_bias_desc());
  dnnl::convolution_backward_weights prim(pd);
  return best_time(reps, [&] {
    prim.execute(st, {{DNNL_ARG_SRC, x2}, {DNNL_ARG_DIFF_DST, gy}, {DNNL_ARG_DIFF_WEIGHTS, gw}, {DNNL_ARG_DIFF_BIAS, gb}});
    st.wait();
  });
}
#endif

}  // namespace

int main(int argc, char** argv) {
  const char* usage =
      "usage: halo-bench-conv [--threads N] [--batch N] [--size S] [--reps R] [--layer 1-5] [--compare-blocked]\n"
      "                       [--layout automatic|channels_last|blocked] [--precision f32|bf16]\n"
      "       halo-bench-conv --device cuda [batch ...]   (per layer and pass on one GPU, f32/TF32/bf16;\n"
      "                       the same as halo-bench-cudnn-conv)\n"
      "  GFLOP/s of the CosmoFlow convolutions against a peak measured in the same run.\n"
      "  Last line: worst_pct=<x> total_pct=<y> (bf16: against the bf16 dot-product loop, and\n"
      "  speedup_vs_f32=<z>, the training passes' f32 time over their bf16 time in the same run).\n";
  if (halo::bench::help(argc, argv, usage)) return 0;
  if (argc > 2 && std::strcmp(argv[1], "--device") == 0 && std::strcmp(argv[2], "cpu") != 0) {
    std::vector<char*> rest{argv[0]};
    for (int i = 3; i < argc; ++i) rest.push_back(argv[i]);
    return halo::bench::cudnn_conv_main(int(rest.size()), rest.data());
  }
  int threads = 2, batch = 4, size = 128, reps = 3, only = 0;
  bool blocked = false, bf16 = false;
  ops::ConvLayout layout = ops::ConvLayout::automatic;
  for (int i = 1; i < argc; ++i) {
    auto val = [&](int& v) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", argv[i]);
        std::exit(2);
      }
      v = std::atoi(argv[++i]);
    };
    if (!std::strcmp(argv[i], "--threads")) val(threads);
    else if (!std::strcmp(argv[i], "--batch")) val(batch);
    else if (!std::strcmp(argv[i], "--size")) val(size);
    else if (!std::strcmp(argv[i], "--reps")) val(reps);
    else if (!std::strcmp(argv[i], "--layer")) val(only);
    else if (!std::strcmp(argv[i], "--compare-blocked")) blocked = true;
    else if (!std::strcmp(argv[i], "--precision")) {
      const std::string v = i + 1 < argc ? argv[++i] : "";
      if (v != "f32" && v != "bf16") {
        std::fprintf(stderr, "--precision takes f32 or bf16\n");
        return 2;
      }
      bf16 = v == "bf16";
    }
    else if (!std::strcmp(argv[i], "--layout")) {
      const std::string v = i + 1 < argc ? argv[++i] : "";
      if (v == "channels_last") layout = ops::ConvLayout::channels_last;
      else if (v == "blocked") layout = ops::ConvLayout::blocked;
      else if (v != "automatic") {
        std::fprintf(stderr, "--layout takes automatic, channels_last or blocked\n");
        return 2;
      }
    }
    else {
      std::fprintf(stderr, "halo-bench-conv: unknown option %s\n%s", argv[i], usage);
      return 2;
    }
  }
  set_num_threads(threads);
  // Other processes share these cores: the peak is re-measured before every layer and
  // the best is kept, like the best-of-reps pass times.
  std::printf("threads %d batch %d size %d reps %d (best of reps per pass)\n", threads, batch, size, reps);
  struct Row {
    int layer;
    std::string input, pass, kernel;
    long long cout;
    double flops, t;
    bool in_training;
    double t_blocked;
  };
  std::vector<Row> rows;
  double peak = 0;

  const int64_t cin[5] = {4, 32, 64, 128, 256}, cout[5] = {32, 64, 128, 256, 512};
  const auto p = ops::ConvParams::uniform(3, 1, 1);
  ops::ConvEpilogue e{ops::Activation::leaky_relu, 0.3};
  double worst = 1e30, total_flops = 0, total_time = 0, f32_time = 0;
  // bf16: the ceiling is the bf16 dot-product loop; the f32 passes are timed too, same run.
  if (bf16 && (blocked || !HALO_ENABLE_ONEDNN)) {
    std::fprintf(stderr, "halo-bench-conv: --precision bf16 needs oneDNN and does not take --compare-blocked\n");
    return 2;
  }
  for (int l = 0; l < 5; ++l) {
    if (only && l + 1 != only) continue;
    const int64_t s = std::max<int64_t>(1, size >> l);
    const Shape xs{batch, cin[l], s, s, s}, ws{cout[l], cin[l], 3, 3, 3};
    peak = std::max(peak, bf16 ? bench::measure_bf16_peak() : measure_peak());
    Tensor x = random_cl(xs, 1 + l, 1.0f);
    Tensor w = random_cl(ws, 11 + l, 0.1f).contiguous();
    Tensor b = random_cl({cout[l]}, 21 + l, 0.1f).contiguous();
    const double flops = ops::conv_flops(xs, ws, p);
    const Tensor gy32 = random_cl(Shape{batch, cout[l], s, s, s}, 31 + l, 1.0f);
    Tensor gw = Tensor::empty(ws), gb = Tensor::empty({cout[l]});
    struct Pass {
      const char* name;
      double t;
      bool in_training;
    };
    std::string kernel;
    // The three passes with activations of type `dt` (bf16: f32 weights and gradients).
    auto time_passes = [&](DType dt) {
      ops::ConvPlan plan(xs, ws, p, dt, Device::cpu(), e, true, ops::ConvBackend::automatic, "conv", layout);
      kernel = plan.kernel();
      const Tensor xd = x.to(dt), gy = gy32.to(dt);
      Tensor y, gx;
      std::vector<Pass> passes;
      passes.push_back({"forward", best_time(reps, [&] { y = ops::conv_forward(plan, xd, w, b); }), true});
      y = Tensor();
      // The first layer's data gradient is never needed in training (the model input takes
      // no gradient); it is timed for completeness but left out of worst/total.
      passes.push_back({"bwd-data", best_time(reps, [&] { gx = ops::conv_backward_data(plan, gy, w); }), l > 0});
      gx = Tensor();
      passes.push_back(
          {"bwd-weights", best_time(reps, [&] { ops::conv_backward_weights(plan, xd, gy, gw, gb, true); }), true});
      return passes;
    };
    if (bf16)
      for (const Pass& ps : time_passes(DType::f32))
        if (ps.in_training) f32_time += ps.t;
    std::vector<Pass> passes = time_passes(bf16 ? DType::bf16 : DType::f32);
    for (auto& ps : passes) {
      double tb = 0;
#if HALO_ENABLE_ONEDNN
      if (blocked) tb = blocked_time(int(&ps - passes.data()), xs, ws, gy32.shape(), reps);
#else
      (void)blocked;  // nothing to compare against without oneDNN
#endif
      rows.push_back({l + 1, to_string(xs), ps.name, kernel, (long long)cout[l], flops, ps.t,
                      ps.in_training, tb});
    }
  }
  peak = std::max(peak, bf16 ? bench::measure_bf16_peak() : measure_peak());
  double best_pass = 0;
  for (const Row& r : rows) best_pass = std::max(best_pass, r.flops / r.t);
  std::printf("%s loop (all threads, best of %d): %.1f GFLOP/s; fastest pass: %.1f GFLOP/s\n",
              bf16 ? "bf16 dot-product" : "FMA", 5 * (only ? 2 : 6), peak * 1e-9, best_pass * 1e-9);
  peak = std::max(peak, best_pass);
  std::printf("peak (the higher): %.1f GFLOP/s\n", peak * 1e-9);
  std::printf("%-6s %-22s %-7s %-12s %9s %9s %7s  %s\n", "layer", "input", "cout", "pass", "ms", "GFLOP/s", "%peak",
              "kernel");
  for (const Row& r : rows) {
    const double gf = r.flops / r.t * 1e-9, pct = 100.0 * r.flops / r.t / peak;
    std::printf("%-6d %-22s %-7lld %-12s %9.2f %9.1f %6.1f%%  %s%s\n", r.layer, r.input.c_str(), r.cout,
                r.pass.c_str(), r.t * 1e3, gf, pct, r.kernel.c_str(),
                r.in_training ? "" : " (not run in training; excluded)");
    if (r.t_blocked > 0)
      std::printf("%-6s %-22s %-7s %-12s %9.2f %9.1f %6.1f%%  onednn blocked formats, no reorders\n", "", "", "", "",
                  r.t_blocked * 1e3, r.flops / r.t_blocked * 1e-9, 100.0 * r.flops / r.t_blocked / peak);
    if (!r.in_training) continue;
    worst = std::min(worst, pct);
    total_flops += r.flops;
    total_time += r.t;
  }
  if (bf16)
    std::printf("f32 passes in the same run: %.2f ms\nworst_pct=%.1f total_pct=%.1f speedup_vs_f32=%.2f\n",
                f32_time * 1e3, worst, 100.0 * total_flops / total_time / peak, f32_time / total_time);
  else
    std::printf("worst_pct=%.1f total_pct=%.1f\n", worst, 100.0 * total_flops / total_time / peak);
  return 0;
}
