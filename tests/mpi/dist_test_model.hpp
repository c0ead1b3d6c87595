// Test-only pieces for the data-parallel tests: a dense layer y = x W^T + b with exact
// backward (plain loops, f32 or f64), a tanh, a model builder, an MSE loss gradient, and
// plain SGD and Adam written out, so the synchroniser is tested on its own; and values that
// identify a rank, for the broadcast tests.
#pragma once
#include <chrono>
#include <cmath>
#include <thread>
#include <vector>

#include "halo/nn/init.hpp"
#include "halo/nn/model.hpp"

namespace halo::disttest {

template <class T>
class TestDense : public nn::Layer {
 public:
  TestDense(int64_t in, int64_t out, double backward_sleep_s = 0)
      : in_(in), out_(out), sleep_s_(backward_sleep_s) {
    add_parameter("weight", Tensor::zeros({out, in}, dtype_of<T>()));
    add_parameter("bias", Tensor::zeros({out}, dtype_of<T>()), false);
  }
  std::string type() const override { return "TestDense"; }
  Shape output_shape(const std::vector<Shape>& s) const override {
    expect_inputs(s, 1);
    HALO_CHECK_SHAPE(s[0].size() == 2 && s[0][1] == in_, describe(), ": expected [N,", in_, "], got ",
                     to_string(s[0]));
    return {s[0][0], out_};
  }
  Tensor forward(const std::vector<Tensor>& x) override {
    if (training()) x_ = x[0];
    const int64_t n = x[0].size(0);
    Tensor y = Tensor::zeros({n, out_}, dtype_of<T>());
    const T* a = x[0].data<T>();
    const T* w = params_[0].value.data<T>();
    const T* b = params_[1].value.data<T>();
    T* o = y.data<T>();
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < out_; ++j) {
        T acc = b[j];
        for (int64_t i = 0; i < in_; ++i) acc += a[r * in_ + i] * w[j * in_ + i];
        o[r * out_ + j] = acc;
      }
    return y;
  }
  std::vector<Tensor> backward(const Tensor& g) override {
    // A realistic layer takes time here; the overlap test needs backward to last.
    if (sleep_s_ > 0) std::this_thread::sleep_for(std::chrono::duration<double>(sleep_s_));
    const int64_t n = g.size(0);
    const T* gy = g.data<T>();
    const T* a = x_.data<T>();
    const T* w = params_[0].value.data<T>();
    T* gw = params_[0].grad.data<T>();
    T* gb = params_[1].grad.data<T>();
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < out_; ++j) {
        gb[j] += gy[r * out_ + j];
        for (int64_t i = 0; i < in_; ++i) gw[j * in_ + i] += gy[r * out_ + j] * a[r * in_ + i];
      }
    if (!input_needs_grad(0)) return {Tensor()};
    Tensor gx = Tensor::zeros({n, in_}, dtype_of<T>());
    T* gxp = gx.data<T>();
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < out_; ++j)
        for (int64_t i = 0; i < in_; ++i) gxp[r * in_ + i] += gy[r * out_ + j] * w[j * in_ + i];
    return {gx};
  }
  void init_parameters(uint64_t seed) override {
    nn::init::fill(params_[0].value, nn::init::Scheme::kaiming_uniform, double(in_), double(out_), seed,
                   params_[0].name);
    nn::init::fill(params_[1].value, nn::init::Scheme::kaiming_uniform, double(in_), double(out_), seed + 1,
                   params_[1].name);
  }

 private:
  int64_t in_, out_;
  double sleep_s_;
  Tensor x_;
};

template <class T>
class TestTanh : public nn::Layer {
 public:
  std::string type() const override { return "TestTanh"; }
  Shape output_shape(const std::vector<Shape>& s) const override { return s.at(0); }
  Tensor forward(const std::vector<Tensor>& x) override {
    y_ = Tensor::empty_like(x[0]);
    const T* a = x[0].data<T>();
    T* o = y_.data<T>();
    for (int64_t i = 0; i < y_.numel(); ++i) o[i] = std::tanh(a[i]);
    return y_;
  }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor gx = Tensor::empty_like(g);
    const T* y = y_.data<T>();
    const T* gy = g.data<T>();
    T* o = gx.data<T>();
    for (int64_t i = 0; i < g.numel(); ++i) o[i] = gy[i] * (T(1) - y[i] * y[i]);
    return {gx};
  }

 private:
  Tensor y_;
};

/// dense(in, h) - tanh - dense(h, h) - tanh - dense(h, out), initialised from `seed`.
template <class T>
std::unique_ptr<nn::Model> make_mlp(int64_t in, int64_t hidden, int64_t out, uint64_t seed,
                                    double backward_sleep_s = 0) {
  auto m = std::make_unique<nn::Model>();
  m->input({in});
  m->append(std::make_shared<TestDense<T>>(in, hidden, backward_sleep_s), "fc1");
  m->append(std::make_shared<TestTanh<T>>(), "act1");
  m->append(std::make_shared<TestDense<T>>(hidden, hidden, backward_sleep_s), "fc2");
  m->append(std::make_shared<TestTanh<T>>(), "act2");
  m->append(std::make_shared<TestDense<T>>(hidden, out, backward_sleep_s), "fc3");
  m->compile();
  m->init(seed);
  return m;
}

/// Rows [begin, end) of a deterministic data set: the same values on every rank.
template <class T>
Tensor make_rows(int64_t begin, int64_t end, int64_t width, uint64_t salt) {
  Tensor t = Tensor::empty({end - begin, width}, dtype_of<T>());
  T* p = t.data<T>();
  for (int64_t r = begin; r < end; ++r)
    for (int64_t c = 0; c < width; ++c) {
      uint64_t h = (uint64_t(r) * 1315423911u + uint64_t(c) * 2654435761u + salt * 97u) % 10007u;
      p[(r - begin) * width + c] = T(double(h) / 5003.5 - 1.0);
    }
  return t;
}

/// Gradient of the loss 0.5 * mean over the batch of ||y - t||^2.
template <class T>
Tensor mse_grad(const Tensor& y, const Tensor& t) {
  Tensor g = Tensor::empty_like(y);
  const T* a = y.data<T>();
  const T* b = t.data<T>();
  T* o = g.data<T>();
  const T inv = T(1) / T(y.size(0));
  for (int64_t i = 0; i < y.numel(); ++i) o[i] = (a[i] - b[i]) * inv;
  return g;
}

/// Plain SGD with momentum and Adam on a list of parameters.
template <class T>
struct TestOptimizer {
  bool adam = false;
  double lr = 0.05, momentum = 0.9, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  int t = 0;
  std::vector<std::vector<double>> m, v;

  void step(const std::vector<nn::Parameter*>& ps) {
    if (m.empty())
      for (auto* p : ps) {
        m.emplace_back(size_t(p->value.numel()), 0.0);
        v.emplace_back(size_t(p->value.numel()), 0.0);
      }
    ++t;
    for (size_t k = 0; k < ps.size(); ++k) {
      T* w = ps[k]->value.template data<T>();
      const T* g = ps[k]->grad.template data<T>();
      for (int64_t i = 0; i < ps[k]->value.numel(); ++i) {
        double gi = double(g[i]);
        double& mi = m[k][size_t(i)];
        double& vi = v[k][size_t(i)];
        if (!adam) {
          mi = momentum * mi + gi;
          w[i] = T(double(w[i]) - lr * mi);
        } else {
          mi = beta1 * mi + (1 - beta1) * gi;
          vi = beta2 * vi + (1 - beta2) * gi * gi;
          double mh = mi / (1 - std::pow(beta1, t)), vh = vi / (1 - std::pow(beta2, t));
          w[i] = T(double(w[i]) - lr * mh / (std::sqrt(vh) + eps));
        }
      }
    }
  }
};

// Values that identify the rank and the position: small integers, exact in bf16 and f32.
inline std::vector<double> rank_values(int rank, int64_t n, int salt) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = 3.0 * (rank + 1) + double((i + salt) % 50);
  return v;
}
inline Tensor rank_tensor(int rank, const Shape& shape, DType dt, int salt) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return Tensor::from_vector(rank_values(rank, n, salt), shape).to(dt);
}

}  // namespace halo::disttest
