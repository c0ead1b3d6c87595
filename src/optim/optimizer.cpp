#include "halo/optim/optimizer.hpp"

#include <cmath>
#include <set>

#include "halo/util/error.hpp"

namespace halo::optim {

Optimizer::Optimizer(std::vector<nn::Parameter*> params, double lr)
    : lr_(lr), params_(std::move(params)), slots_(params_.size()) {
  std::set<std::string> names;
  for (size_t i = 0; i < params_.size(); ++i) {
    HALO_CHECK(params_[i] != nullptr, "Optimizer: parameter ", i, " is null");
    const std::string& n = params_[i]->name;
    // State is keyed by parameter name, so names must exist and be unique.
    HALO_CHECK(!n.empty(), "Optimizer: parameter ", i, " has no name; compile the model before creating the optimizer");
    HALO_CHECK(names.insert(n).second, "Optimizer: parameter '", n, "' is listed twice");
  }
  set_lr(lr);
}

void Optimizer::set_lr(double lr) {
  HALO_CHECK_T(ConfigError, std::isfinite(lr) && lr >= 0, "Optimizer", ": learning rate ", lr,
               " must be finite and >= 0");
  lr_ = lr;
}

void Optimizer::step() {
  if (schedule_) set_lr(schedule_(step_));
  ++step_;
  for (const nn::Parameter* p : params_)
    HALO_CHECK(p->grad.defined(), type(), ": parameter '", p->name, "' has no gradient tensor");
  update_all();
}

void Optimizer::update_all() {
  for (size_t i = 0; i < params_.size(); ++i) update(i, *params_[i]);
}

void Optimizer::zero_grad() {
  for (auto* p : params_)
    if (p->grad.defined()) p->grad.zero_();
}

Tensor& Optimizer::slot(size_t i, const std::string& name) {
  auto& s = slots_[i];
  auto it = s.find(name);
  if (it == s.end()) it = s.emplace(name, Tensor::zeros_like(params_[i]->value)).first;
  return it->second;
}

StateDict Optimizer::state() const {
  StateDict out;
  for (size_t i = 0; i < params_.size(); ++i)
    for (const auto& kv : slots_[i]) out[params_[i]->name + "/" + kv.first] = kv.second.clone();
  out["step"] = Tensor::from_vector<int64_t>({step_}, {1});
  out["lr"] = Tensor::from_vector<double>({lr_}, {1});
  return out;
}

void Optimizer::load_state(const StateDict& state) {
  auto step_it = state.find("step");
  HALO_CHECK(step_it != state.end() && step_it->second.defined() && step_it->second.numel() == 1, type(),
             "::load_state: no 'step' entry; is this an optimizer state?");
  const int64_t step = int64_t(std::llround(step_it->second.item()));
  HALO_CHECK(step >= 0, type(), "::load_state: negative step ", step);

  // Where each expected entry goes: name -> (parameter, slot).
  std::map<std::string, std::pair<size_t, std::string>> expected;
  for (size_t i = 0; i < params_.size(); ++i)
    for (const auto& s : slot_names()) expected[params_[i]->name + "/" + s] = {i, s};
  for (const auto& kv : state) {
    if (kv.first == "step" || kv.first == "lr") continue;
    HALO_CHECK(expected.count(kv.first), type(), "::load_state: entry '", kv.first,
               "' belongs to no parameter and slot of this ", type(),
               " (state saved by another optimizer or model?)");
  }
  // Check everything before changing anything, so a failed load leaves the optimizer intact.
  for (const auto& e : expected) {
    auto it = state.find(e.first);
    if (it == state.end()) {
      HALO_CHECK(step == 0, type(), "::load_state: entry '", e.first, "' is missing from a state at step ", step);
      continue;
    }
    const Tensor& value = params_[e.second.first]->value;
    HALO_CHECK_SHAPE(it->second.defined() && it->second.shape() == value.shape(), type(), "::load_state: entry '",
                     e.first, "' is ", (it->second.defined() ? it->second.str() : "undefined"),
                     ", the parameter is ", value.str());
  }
  for (auto& s : slots_) s.clear();
  for (const auto& e : expected) {
    auto it = state.find(e.first);
    if (it != state.end()) slot(e.second.first, e.second.second).copy_(it->second);
  }
  step_ = step;
  auto lr_it = state.find("lr");
  if (lr_it != state.end()) set_lr(lr_it->second.item());
}

}  // namespace halo::optim
