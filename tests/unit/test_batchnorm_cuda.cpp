// BatchNorm's CUDA branch against the CPU implementation on random inputs: training and eval
// forward (running statistics included), backward with and without the fused ReLU, both
// layouts, f32 and bf16 activations with f32 parameters, and the StatsReducer hook.
#include "cuda_test_util.hpp"
#include "gpu_test_skip.hpp"
#include "halo/ops/batchnorm.hpp"

using namespace halo;
using namespace halo_cuda_test;

namespace {

struct Params {
  Tensor weight, bias, running_mean, running_var;
};

Params make_params(int64_t C, uint32_t seed) {
  Params p;
  p.weight = random_tensor({C}, seed, MemoryFormat::contiguous, 1.f, 0.3f);
  p.bias = random_tensor({C}, seed + 1);
  p.running_mean = random_tensor({C}, seed + 2);
  p.running_var = random_tensor({C}, seed + 3, MemoryFormat::contiguous, 1.5f, 0.2f);
  return p;
}

Params to_gpu(const Params& p) {
  return {p.weight.to(gpu), p.bias.to(gpu), p.running_mean.to(gpu), p.running_var.to(gpu)};
}

// The saved statistics wherever the GPU path kept them: on the device (no reducer, f32
// parameters) or on the host (with a reducer).
std::vector<double> mean_of(const ops::BatchNormSaved& s) {
  return s.device_mean.defined() ? s.device_mean.to_vector<double>() : s.mean;
}
std::vector<double> invstd_of(const ops::BatchNormSaved& s) {
  return s.device_invstd.defined() ? s.device_invstd.to_vector<double>() : s.invstd;
}

// A reducer standing for a group of two ranks holding the same batch: every sum doubles.
void two_identical_ranks(double* v, size_t n) {
  for (size_t i = 0; i < n; ++i) v[i] *= 2;
}

}  // namespace

TEST_CASE("cuda batchnorm training forward and backward match the CPU", "[batchnorm][gpu]") {
  for (const Shape& shape : {Shape{4, 16, 5, 7}, Shape{2, 6, 3, 4, 5}, Shape{12, 10}}) {
    for (MemoryFormat fmt : {MemoryFormat::channels_last, MemoryFormat::contiguous}) {
      for (DType dt : {DType::f32, DType::bf16}) {
        for (bool relu : {false, true}) {
          for (bool reduce : {false, true}) {
            INFO(to_string(shape) << (fmt == MemoryFormat::channels_last ? " channels-last " : " contiguous ")
                                  << name(dt) << (relu ? " relu" : "") << (reduce ? " reducer" : ""));
            if (shape.size() == 2 && fmt == MemoryFormat::channels_last) continue;
            const int64_t C = shape[1];
            ops::BatchNormConfig cfg;
            cfg.relu = relu;
            const ops::StatsReducer reducer = reduce ? ops::StatsReducer(two_identical_ranks) : ops::StatsReducer();
            Params cp = make_params(C, 3);
            Params gp = to_gpu(cp);
            const Tensor x = random_tensor(shape, 7, fmt, 0.5f, 2.f);
            const Tensor xr = rounded(x, dt);

            ops::BatchNormSaved cs, gs;
            const Tensor y_ref = ops::batchnorm_forward_train(xr, cp.weight, cp.bias, cp.running_mean,
                                                              cp.running_var, cfg, &cs, reducer);
            const Tensor y = ops::batchnorm_forward_train(on_gpu(x, dt), gp.weight, gp.bias, gp.running_mean,
                                                          gp.running_var, cfg, &gs, reducer);
            CHECK(y.dtype() == dt);
            CHECK(y.device() == gpu);
            CHECK(y.memory_format() == x.memory_format());
            CHECK(rel_err(y, y_ref) < tol(dt));
            CHECK(rel_err(gp.running_mean, cp.running_mean) < 1e-6);
            CHECK(rel_err(gp.running_var, cp.running_var) < 1e-6);
            CHECK(gs.count == cs.count);
            // Without a reducer the statistics algebra stays on the device; with one it runs
            // on the host (the reducer's buffer is a host one).
            CHECK(gs.device_mean.defined() == !reduce);
            const std::vector<double> gmean = mean_of(gs), ginvstd = invstd_of(gs);
            REQUIRE(gmean.size() == size_t(C));
            REQUIRE(ginvstd.size() == size_t(C));
            for (size_t c = 0; c < size_t(C); ++c) {
              CHECK(gmean[c] == Approx(cs.mean[c]).margin(1e-9).epsilon(1e-9));
              CHECK(ginvstd[c] == Approx(cs.invstd[c]).epsilon(1e-9));
            }

            const Tensor gy = rounded(random_tensor(shape, 8, fmt), dt);
            // Both sides mask with the GPU's output, so a value rounding to the other side
            // of zero cannot flip one element of the mask.
            const Tensor mask = relu ? y.to(Device::cpu()).to(DType::f32) : Tensor();
            const ops::BatchNormGrads ref = ops::batchnorm_backward(gy, xr, cp.weight, cs, true, reducer, "bn", mask);
            const ops::BatchNormGrads got = ops::batchnorm_backward(on_gpu(gy, dt), on_gpu(x, dt), gp.weight, gs, true,
                                                                    reducer, "bn", relu ? y : Tensor());
            CHECK(got.dx.dtype() == dt);
            CHECK(got.dx.memory_format() == x.memory_format());
            CHECK(rel_err(got.dx, ref.dx) < (dt == DType::bf16 ? 2e-2 : 5e-5));
            CHECK(rel_err(got.dweight, ref.dweight) < 1e-5);
            CHECK(rel_err(got.dbias, ref.dbias) < 1e-5);
          }
        }
      }
    }
  }
}

TEST_CASE("cuda batchnorm eval forward and backward match the CPU", "[batchnorm][gpu]") {
  for (MemoryFormat fmt : {MemoryFormat::channels_last, MemoryFormat::contiguous}) {
    for (bool relu : {false, true}) {
      const Shape shape{3, 8, 6, 5};
      ops::BatchNormConfig cfg;
      cfg.relu = relu;
      const Params cp = make_params(8, 11);
      const Params gp = to_gpu(cp);
      const Tensor x = random_tensor(shape, 12, fmt);
      ops::BatchNormSaved cs, gs;
      const Tensor y_ref = ops::batchnorm_forward_eval(x, cp.weight, cp.bias, cp.running_mean, cp.running_var, cfg, &cs);
      const Tensor y = ops::batchnorm_forward_eval(x.to(gpu), gp.weight, gp.bias, gp.running_mean, gp.running_var, cfg,
                                                   &gs);
      CHECK(!gs.batch_stats);
      CHECK(rel_err(y, y_ref) < 1e-5);
      const Tensor gy = random_tensor(shape, 13, fmt);
      const Tensor mask = relu ? y.to(Device::cpu()) : Tensor();
      const auto ref = ops::batchnorm_backward(gy, x, cp.weight, cs, true, {}, "bn", mask);
      const auto got = ops::batchnorm_backward(gy.to(gpu), x.to(gpu), gp.weight, gs, true, {}, "bn", relu ? y : Tensor());
      CHECK(rel_err(got.dx, ref.dx) < 1e-5);
      CHECK(rel_err(got.dweight, ref.dweight) < 1e-5);
      CHECK(rel_err(got.dbias, ref.dbias) < 1e-5);
      // Without dx only the parameter gradients are formed.
      const auto no_dx = ops::batchnorm_backward(gy.to(gpu), x.to(gpu), gp.weight, gs, false);
      CHECK(!no_dx.dx.defined());
      CHECK(rel_err(no_dx.dbias, ref.dbias) < 1e-5);
    }
  }
}

TEST_CASE("cuda batchnorm sums a large channels-last batch in f64", "[batchnorm][gpu]") {
  // 2^20 values per channel with a large mean: an f32 running sum would lose the variance.
  const Shape shape{16, 4, 256, 256};
  const Tensor x = random_tensor(shape, 21, MemoryFormat::channels_last, 100.f, 1.f);
  const Params cp = make_params(4, 22);
  Params gp = to_gpu(cp);
  Params cp2 = cp;
  cp2.running_mean = cp.running_mean.clone();
  cp2.running_var = cp.running_var.clone();
  ops::BatchNormSaved cs, gs;
  ops::batchnorm_forward_train(x, cp2.weight, cp2.bias, cp2.running_mean, cp2.running_var, {}, &cs);
  ops::batchnorm_forward_train(x.to(gpu), gp.weight, gp.bias, gp.running_mean, gp.running_var, {}, &gs);
  const std::vector<double> gmean = mean_of(gs), ginvstd = invstd_of(gs);
  REQUIRE(gmean.size() == 4);
  for (size_t c = 0; c < 4; ++c) {
    CHECK(gmean[c] == Approx(cs.mean[c]).epsilon(1e-10));
    CHECK(ginvstd[c] == Approx(cs.invstd[c]).epsilon(1e-6));
  }
}
