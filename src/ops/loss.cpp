// Losses: argument checks, then the kernels of the prediction's device (op_table.hpp).
#include "halo/ops/loss.hpp"

#include "op_table.hpp"

namespace halo::ops {

namespace {

double error_forward(const Tensor& p, const Tensor& t, bool squared, const char* what) {
  return loss_kernels(device_of(p), what).error_forward(p, t, squared, what);
}

Tensor error_backward(const Tensor& p, const Tensor& t, bool squared, const char* what) {
  return loss_kernels(device_of(p), what).error_backward(p, t, squared, what);
}

CrossEntropySums run_cross_entropy(const Tensor& logits_in, const Tensor& labels_in, const CrossEntropyOptions& o,
                                   Tensor* grad, double scale) {
  const char* what = "cross_entropy";
  HALO_CHECK_SHAPE(logits_in.defined() && labels_in.defined() && logits_in.dim() >= 2, what, ": logits must be (N, K",
                   ", spatial...), got ", (logits_in.defined() ? logits_in.str() : "undefined"));
  Shape want = logits_in.shape();
  want.erase(want.begin() + 1);
  HALO_CHECK_SHAPE(labels_in.shape() == want, what, ": labels ", labels_in.str(), " do not fit logits ",
                   logits_in.str(), " (expected labels of shape ", to_string(want), ")");
  HALO_CHECK_SHAPE(labels_in.dtype() == DType::i32 || labels_in.dtype() == DType::i64, what, ": labels ",
                   labels_in.str(), " must be i32 or i64");
  const int64_t K = logits_in.size(1);
  HALO_CHECK_SHAPE(o.class_weights.empty() || int64_t(o.class_weights.size()) == K, what, ": ",
                   o.class_weights.size(), " class weights for ", K, " classes");
  return loss_kernels(logits_in.device(), what).cross_entropy(logits_in, labels_in, o, grad, scale);
}

}  // namespace

double mse_forward(const Tensor& p, const Tensor& t) { return error_forward(p, t, true, "mse"); }
Tensor mse_backward(const Tensor& p, const Tensor& t) { return error_backward(p, t, true, "mse"); }
double l1_forward(const Tensor& p, const Tensor& t) { return error_forward(p, t, false, "l1"); }
Tensor l1_backward(const Tensor& p, const Tensor& t) { return error_backward(p, t, false, "l1"); }

CrossEntropySums cross_entropy_forward(const Tensor& logits, const Tensor& labels, const CrossEntropyOptions& o) {
  return run_cross_entropy(logits, labels, o, nullptr, 0.0);
}

Tensor cross_entropy_backward(const Tensor& logits, const Tensor& labels, const CrossEntropyOptions& o,
                              double scale) {
  Tensor g;
  run_cross_entropy(logits, labels, o, &g, scale);
  return g;
}

}  // namespace halo::ops
