#include "halo/nn/layer.hpp"

namespace halo::nn {

bool Layer::runs_with(const std::function<bool(ops::OpFamily)>& available) const {
  const auto families = op_families();
  if (!families) return false;
  for (ops::OpFamily f : *families)
    if (!available(f)) return false;
  return true;
}

bool Layer::runs_on(Device device) const {
  if (device.is_cpu()) return true;
  return ops::has_backend(device.kind) && runs_with([&](ops::OpFamily f) { return ops::has_kernels(f, device.kind); });
}

void Layer::to(Device dev) {
  for (auto& p : params_) {
    p.value = p.value.to(dev);
    if (p.grad.defined()) p.grad = p.grad.to(dev);
  }
  for (auto& b : buffers_) b.value = b.value.to(dev);
}

Parameter& Layer::add_parameter(const std::string& local_name, Tensor value, bool weight_decay) {
  Parameter p;
  p.name = local_name;
  p.grad = Tensor::zeros_like(value);
  p.value = std::move(value);
  p.weight_decay = weight_decay;
  params_.push_back(std::move(p));
  return params_.back();
}

Buffer& Layer::add_buffer(const std::string& local_name, Tensor value) {
  buffers_.push_back(Buffer{local_name, std::move(value)});
  return buffers_.back();
}

void Layer::expect_inputs(const std::vector<Shape>& inputs, size_t n) const {
  HALO_CHECK_SHAPE(inputs.size() == n, describe(), ": expected ", n, " input(s), got ", inputs.size());
}

}  // namespace halo::nn
