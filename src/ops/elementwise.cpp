// Element-wise ops: argument checks and layout alignment, then the kernels of the operands'
// device (op_table.hpp).
#include "halo/ops/elementwise.hpp"

#include "dense.hpp"
#include "op_table.hpp"

namespace halo::ops {

using detail::dense;
using detail::in_layout_of;

const char* name(Activation a) {
  switch (a) {
#define HALO_ACTIVATION_NAME(n) \
  case Activation::n:           \
    return #n;
    HALO_ACTIVATIONS(HALO_ACTIVATION_NAME)
#undef HALO_ACTIVATION_NAME
  }
  return "?";
}

namespace {

void check_same_shape(const Tensor& a, const Tensor& b, const char* what) {
  HALO_CHECK_SHAPE(a.defined() && b.defined(), what, ": undefined operand");
  HALO_CHECK_SHAPE(a.shape() == b.shape() && a.dtype() == b.dtype() && a.device() == b.device(), what, ": operands ",
                   a.str(), " and ", b.str(), " differ in shape, dtype or device");
}

void check_defined(const Tensor& a, const char* what) { HALO_CHECK_SHAPE(a.defined(), what, ": undefined operand"); }

void check_slope(Activation a, double slope) {
  HALO_CHECK_T(ConfigError, a != Activation::leaky_relu || slope >= 0.0,
               "leaky_relu: slope must be >= 0 (backward reads the sign of the output), got ", slope);
}

const ElementwiseKernels& kernels_of(const Tensor& t, const char* what) {
  return elementwise_kernels(device_of(t), what);
}

}  // namespace

Tensor activation_forward(Activation a, const Tensor& x, double slope) {
  check_slope(a, slope);
  check_defined(x, name(a));
  return kernels_of(x, name(a)).activation_forward(a, dense(x), slope);
}

Tensor activation_backward(Activation a, const Tensor& y_in, const Tensor& gy_in, double slope) {
  check_same_shape(y_in, gy_in, name(a));
  check_slope(a, slope);
  const Tensor y = dense(y_in);
  return kernels_of(y, name(a)).activation_backward(a, y, in_layout_of(gy_in, y), slope);
}

void axpby_(Tensor& y, double alpha, const Tensor& x, double beta) {
  check_same_shape(y, x, "axpby");
  HALO_CHECK_SHAPE(y.is_dense(), "axpby: destination ", y.str(), " is not dense (in-place ops need a dense tensor)");
  kernels_of(y, "axpby").axpby(y, alpha, in_layout_of(x, y), beta);
}

void axpy_(Tensor& y, double alpha, const Tensor& x) { axpby_(y, alpha, x, 1.0); }

Tensor add(const Tensor& a, const Tensor& b) { return add_n({a, b}); }

Tensor add_n(const std::vector<Tensor>& xs) {
  HALO_CHECK_SHAPE(!xs.empty(), "add_n: no operands");
  for (size_t k = 1; k < xs.size(); ++k) check_same_shape(xs[0], xs[k], "add");
  check_defined(xs[0], "add");
  Tensor y = Tensor::empty_like(dense(xs[0]));
  y.copy_(xs[0]);
  for (size_t k = 1; k < xs.size(); ++k) axpby_(y, 1.0, xs[k], 1.0);
  return y;
}

Tensor scale(const Tensor& x_in, double alpha) {
  check_defined(x_in, "scale");
  const Tensor x = dense(x_in);
  Tensor y = Tensor::empty_like(x);
  kernels_of(x, "scale").axpby(y, alpha, x, 0.0);
  return y;
}

void scale_(Tensor& x, double alpha) {
  check_defined(x, "scale_");
  HALO_CHECK_SHAPE(x.is_dense(), "scale_: ", x.str(), " is not dense (in-place ops need a dense tensor)");
  kernels_of(x, "scale_").scale(x, alpha);
}

Tensor mul(const Tensor& a_in, const Tensor& b_in) {
  check_same_shape(a_in, b_in, "mul");
  const Tensor a = dense(a_in);
  return kernels_of(a, "mul").mul(a, in_layout_of(b_in, a));
}

double sum(const Tensor& x_in) {
  check_defined(x_in, "sum");
  return kernels_of(x_in, "sum").dot(dense(x_in), nullptr);
}

double sum_squares(const Tensor& x_in) {
  check_defined(x_in, "sum_squares");
  const Tensor x = dense(x_in);
  return kernels_of(x, "sum_squares").dot(x, &x);
}

double dot(const Tensor& a_in, const Tensor& b_in) {
  check_same_shape(a_in, b_in, "dot");
  const Tensor a = dense(a_in);
  const Tensor b = in_layout_of(b_in, a);
  return kernels_of(a, "dot").dot(a, &b);
}

Tensor dropout_mask(const Tensor& like, double p, uint64_t seed, uint64_t step, const uint64_t* key_on_device) {
  check_defined(like, "dropout");
  HALO_CHECK_T(ConfigError, p >= 0.0 && p < 1.0, "dropout: probability must be in [0, 1), got ", p);
  HALO_CHECK_T(ConfigError, !key_on_device || like.device().is_cuda(),
               "dropout: a key in device memory is for GPU tensors, got one on ", like.device().str());
  return kernels_of(like, "dropout").dropout_mask(like, p, seed, step, key_on_device);
}

}  // namespace halo::ops
