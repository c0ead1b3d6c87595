// Training state <-> CheckpointData (checkpoint.hpp): the one place that knows which keys a
// resumable checkpoint holds, shared by the Trainer and programs that train without one.
#include <string>
#include <utility>
#include <vector>

#include "halo/nn/dropout.hpp"
#include "halo/nn/model.hpp"
#include "halo/optim/loss_scaler.hpp"
#include "halo/optim/optimizer.hpp"
#include "halo/train/checkpoint.hpp"
#include "halo/util/error.hpp"

namespace halo::train {

namespace {

const char* const kModel = "model/";
const char* const kBuffers = "buffers/";
const char* const kOptimizer = "optimizer/";
const char* const kDropout = "dropout_step/";
const char* const kScaler = "loss_scaler/";

// Dropout layers carry a mask counter that is state like a parameter: without it a resumed
// run would draw the masks of its first steps again.
std::vector<std::pair<std::string, nn::Dropout*>> dropout_layers(nn::Model& m) {
  std::vector<std::pair<std::string, nn::Dropout*>> out;
  for (const auto& n : m.nodes())
    if (auto* d = dynamic_cast<nn::Dropout*>(n.layer.get())) out.emplace_back(n.name, d);
  return out;
}

}  // namespace

CheckpointData training_state(nn::Model& model, const optim::Optimizer& optimizer,
                              const optim::DynamicLossScaler* scaler, const TrainingPosition& position) {
  CheckpointData d;
  for (auto* p : model.parameters()) d.tensors[kModel + p->name] = p->value;
  for (auto* b : model.buffers()) d.tensors[kBuffers + b->name] = b->value;
  for (auto& [k, t] : optimizer.state()) d.tensors[kOptimizer + k] = t;
  for (auto& [name, layer] : dropout_layers(model)) d.integers[kDropout + name] = int64_t(layer->step());
  d.integers["epoch"] = position.epoch;
  d.integers["step_in_epoch"] = position.step_in_epoch;
  d.integers["global_step"] = position.global_step;
  d.integers["ranks"] = position.ranks;
  if (position.replicas > 0) d.integers["replicas"] = position.replicas;
  if (position.global_batch > 0) d.integers["global_batch"] = position.global_batch;
  if (scaler)
    for (auto& [k, t] : scaler->state()) d.tensors[k] = t;  // already named "loss_scaler/..."
  d.strings["optimizer_type"] = optimizer.type();
  return d;
}

TrainingPosition restore_training_state(const CheckpointData& d, nn::Model& model, optim::Optimizer& optimizer,
                                        optim::DynamicLossScaler* scaler, const std::string& path) {
  auto tensor = [&](const std::string& key) -> const Tensor& {
    auto it = d.tensors.find(key);
    HALO_CHECK_T(IOError, it != d.tensors.end(), "checkpoint '", path, "' has no dataset '", key,
                 "': it was written for a different model (compare the model options)");
    return it->second;
  };
  auto integer = [&](const std::string& key) {
    auto it = d.integers.find(key);
    HALO_CHECK_T(IOError, it != d.integers.end(), "checkpoint '", path, "' has no 'meta/", key, "'");
    return it->second;
  };
  for (auto* p : model.parameters()) {
    const Tensor& t = tensor(kModel + p->name);
    HALO_CHECK_T(ShapeError, t.shape() == p->value.shape(), "checkpoint '", path, "': '", p->name, "' has shape ",
                 to_string(t.shape()), " but the model's is ", to_string(p->value.shape()));
    p->value.copy_(t);
  }
  for (auto* b : model.buffers()) {
    const Tensor& t = tensor(kBuffers + b->name);
    HALO_CHECK_T(ShapeError, t.shape() == b->value.shape(), "checkpoint '", path, "': buffer '", b->name,
                 "' has shape ", to_string(t.shape()), " but the model's is ", to_string(b->value.shape()));
    b->value.copy_(t);
  }
  optim::StateDict state;
  const std::string prefix = kOptimizer;
  for (const auto& [k, t] : d.tensors)
    if (k.rfind(prefix, 0) == 0) state[k.substr(prefix.size())] = t;
  auto type = d.strings.find("optimizer_type");
  if (type != d.strings.end() && type->second != optimizer.type())
    throw ConfigError("checkpoint '" + path + "' holds " + type->second + " state but the optimizer is " +
                      optimizer.type());
  optimizer.load_state(state);
  if (scaler) {
    optim::StateDict scaler_state;
    for (const auto& [k, t] : d.tensors)
      if (k.rfind(kScaler, 0) == 0) scaler_state[k] = t;
    HALO_CHECK_T(IOError, !scaler_state.empty(), "checkpoint '", path,
                 "' holds no loss scaler state: it was written without loss scaling");
    scaler->load_state(scaler_state);
  }
  for (auto& [name, layer] : dropout_layers(model)) layer->set_step(uint64_t(integer(kDropout + name)));
  TrainingPosition pos;
  pos.epoch = int(integer("epoch"));
  pos.step_in_epoch = integer("step_in_epoch");
  pos.global_step = integer("global_step");
  pos.ranks = int(integer("ranks"));
  pos.replicas = pos.ranks;  // checkpoints written before spatial parallelism
  if (auto it = d.integers.find("replicas"); it != d.integers.end()) pos.replicas = int(it->second);
  if (auto it = d.integers.find("global_batch"); it != d.integers.end()) pos.global_batch = it->second;  // absent before
  return pos;
}

void save_training_checkpoint(const std::string& path, nn::Model& model, const optim::Optimizer& optimizer,
                              const optim::DynamicLossScaler* scaler, const TrainingPosition& position, int keep) {
  save_checkpoint(path, training_state(model, optimizer, scaler, position), keep);
}

TrainingPosition load_training_checkpoint(const std::string& path, nn::Model& model, optim::Optimizer& optimizer,
                                          optim::DynamicLossScaler* scaler) {
  return restore_training_state(load_checkpoint(path), model, optimizer, scaler, path);
}

}  // namespace halo::train
