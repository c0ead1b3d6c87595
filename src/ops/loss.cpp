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

void check_logits_labels(const Tensor& logits_in, const Tensor& labels_in, const char* what) {
  HALO_CHECK_SHAPE(logits_in.defined() && labels_in.defined() && logits_in.dim() >= 2, what, ": logits must be (N, K",
                   ", spatial...), got ", (logits_in.defined() ? logits_in.str() : "undefined"));
  Shape want = logits_in.shape();
  want.erase(want.begin() + 1);
  HALO_CHECK_SHAPE(labels_in.shape() == want, what, ": labels ", labels_in.str(), " do not fit logits ",
                   logits_in.str(), " (expected labels of shape ", to_string(want), ")");
  HALO_CHECK_SHAPE(labels_in.dtype() == DType::i32 || labels_in.dtype() == DType::i64, what, ": labels ",
                   labels_in.str(), " must be i32 or i64");
}

CrossEntropySums run_cross_entropy(const Tensor& logits_in, const Tensor& labels_in, const CrossEntropyOptions& o,
                                   Tensor* grad, double scale) {
  const char* what = "cross_entropy";
  check_logits_labels(logits_in, labels_in, what);
  const int64_t K = logits_in.size(1);
  HALO_CHECK_SHAPE(o.class_weights.empty() || int64_t(o.class_weights.size()) == K, what, ": ",
                   o.class_weights.size(), " class weights for ", K, " classes");
  return loss_kernels(logits_in.device(), what).cross_entropy(logits_in, labels_in, o, grad, scale);
}

}  // namespace

bool has_cross_entropy_gradient(const Device& device) {
  return loss_kernels(device, "cross_entropy").cross_entropy_gradient != nullptr;
}

Tensor cross_entropy_gradient(const Tensor& logits, const Tensor& labels, const Tensor& device_weights,
                              int64_t ignore_index, Tensor& first_bad) {
  const char* what = "cross_entropy";
  check_logits_labels(logits, labels, what);
  const auto& k = loss_kernels(logits.device(), what);
  HALO_CHECK(k.cross_entropy_gradient, what, ": no on-device gradient on ", logits.device().str(),
             " (has_cross_entropy_gradient is false there)");
  HALO_CHECK_SHAPE(!device_weights.defined() || (device_weights.dtype() == DType::f64 &&
                                                 device_weights.device() == logits.device() &&
                                                 device_weights.numel() == logits.size(1) &&
                                                 device_weights.is_contiguous()),
                   what, ": class weights ", device_weights.str(), " should be f64[", logits.size(1), "] on ",
                   logits.device().str());
  HALO_CHECK_SHAPE(first_bad.defined() && first_bad.dtype() == DType::i64 && first_bad.numel() == 1 &&
                       first_bad.device() == logits.device(),
                   what, ": first_bad should be one i64 on ", logits.device().str());
  return k.cross_entropy_gradient(logits, labels, device_weights, ignore_index, first_bad);
}

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
