#include "halo/nn/model.hpp"
#include "halo/util/timer.hpp"

#include "halo/ops/elementwise.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <map>
#include <set>

#include "halo/util/error.hpp"

namespace halo::nn {

namespace {

std::string lowercase(std::string s) {
  for (auto& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

Shape with_batch(int64_t n, const Shape& sample) {
  Shape s{n};
  s.insert(s.end(), sample.begin(), sample.end());
  return s;
}

template <class T>
void add_flat(T* d, const T* a, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; ++i) d[i] += a[i];
}

// dst += src for dense floating tensors. Gradient sums only happen where a node feeds
// several layers (skip connections), so this stays a plain loop rather than an op; a
// non-CPU tensor takes a round trip through the host until the ops layer offers an add.
void add_into(Tensor& dst, const Tensor& src, const std::string& who) {
  HALO_CHECK_SHAPE(dst.shape() == src.shape() && dst.dtype() == src.dtype(), who, ": gradient ", src.str(),
                   " cannot be added to ", dst.str());
  if (dst.device().is_cuda() && dst.is_dense()) {
    ops::axpy_(dst, 1.0, src);  // the element-wise op's device kernel
    return;
  }
  if (!dst.device().is_cpu()) {
    Tensor h = dst.to(Device::cpu());
    add_into(h, src.to(Device::cpu()), who);
    dst.copy_(h);
    return;
  }
  Tensor s = src;
  if (!src.device().is_cpu() || src.strides() != dst.strides()) {
    s = Tensor::empty_like(dst);
    s.copy_(src);
  }
  if (dst.dtype() == DType::bf16) {  // mixed precision: the element-wise op's bf16 kernel
    ops::axpy_(dst, 1.0, s);
    return;
  }
  const int64_t n = dst.numel();
  HALO_DISPATCH_FLOAT(dst.dtype(), who, [&] { add_flat(dst.data<T>(), s.data<T>(), n); });
}

}  // namespace

// ---------------------------------------------------------------- building

void Model::check_not_compiled(const char* what) const {
  HALO_CHECK(!compiled_, "Model::", what, ": the model is already compiled; build the whole graph before compile()");
}

int Model::find(const std::string& name) const {
  for (size_t i = 0; i < nodes_.size(); ++i)
    if (nodes_[i].name == name) return int(i);
  return -1;
}

int Model::input(const Shape& sample_shape, const std::string& name) {
  check_not_compiled("input");
  HALO_CHECK(!name.empty(), "Model::input: an input needs a name");
  HALO_CHECK(find(name) < 0, "Model::input: the name '", name, "' is already used by another node");
  for (auto d : sample_shape)
    HALO_CHECK_SHAPE(d > 0, "Model::input '", name, "': sample shape ", to_string(sample_shape),
                     " must be positive (leave out the batch dimension)");
  Node n;
  n.name = name;
  n.sample_shape = sample_shape;
  nodes_.push_back(std::move(n));
  input_nodes_.push_back(int(nodes_.size()) - 1);
  return int(nodes_.size()) - 1;
}

int Model::add(LayerPtr layer, const std::vector<int>& inputs, const std::string& name) {
  check_not_compiled("add");
  HALO_CHECK(layer != nullptr, "Model::add: null layer");
  HALO_CHECK(!inputs.empty(), "Model::add: ", layer->type(), " needs at least one input node");
  for (int i : inputs)
    HALO_CHECK(i >= 0 && i < int(nodes_.size()), "Model::add: ", layer->type(), " input node ", i,
               " does not exist (the model has ", nodes_.size(), " nodes; add inputs first)");
  for (const auto& n : nodes_)
    HALO_CHECK(n.layer != layer, "Model::add: this ", layer->type(), " is already in the model as '", n.name,
               "'; a layer instance can appear once (create another to repeat it)");
  std::string nm = name;
  if (nm.empty()) {
    const std::string base = lowercase(layer->type());
    int count = 1;
    for (const auto& n : nodes_)
      if (n.layer && n.layer->type() == layer->type()) ++count;
    while (find(base + std::to_string(count)) >= 0) ++count;
    nm = base + std::to_string(count);
  }
  HALO_CHECK(find(nm) < 0, "Model::add: duplicate node name '", nm, "' (", layer->type(),
             "); give each layer a unique name");
  HALO_CHECK(nm.find('/') == std::string::npos, "Model::add: layer name '", nm,
             "' must not contain '/' (it separates layer and parameter in parameter names)");
  layer->set_name(nm);
  Node n;
  n.layer = std::move(layer);
  n.inputs = inputs;
  n.name = nm;
  nodes_.push_back(std::move(n));
  return int(nodes_.size()) - 1;
}

int Model::append(LayerPtr layer, const std::string& name) {
  HALO_CHECK(!nodes_.empty(), "Model::append: declare an input first (Model::input)");
  return add(std::move(layer), std::vector<int>{int(nodes_.size()) - 1}, name);
}

void Model::set_output(int node) {
  check_not_compiled("set_output");
  HALO_CHECK(node >= 0 && node < int(nodes_.size()), "Model::set_output: node ", node, " does not exist");
  output_ = node;
}

// ---------------------------------------------------------------- compile

void Model::compile() {
  if (compiled_) return;
  HALO_CHECK(!input_nodes_.empty(), "Model::compile: the model has no input (Model::input)");
  if (output_ < 0) output_ = int(nodes_.size()) - 1;
  HALO_CHECK(nodes_[size_t(output_)].layer != nullptr, "Model::compile: the output node '",
             nodes_[size_t(output_)].name, "' is an input; add layers");

  // Batch 2 rather than 1 catches layers that fold the batch into another dimension.
  constexpr int64_t probe_batch = 2;
  std::set<std::string> param_names;
  for (auto& node : nodes_) {
    if (!node.layer) continue;
    Layer& L = *node.layer;
    std::vector<Shape> in;
    for (int i : node.inputs) in.push_back(with_batch(probe_batch, nodes_[size_t(i)].sample_shape));
    std::string fed_by;
    for (size_t k = 0; k < node.inputs.size(); ++k)
      fed_by += str(k ? ", " : "", "'", nodes_[size_t(node.inputs[k])].name, "' ", to_string(in[k]));
    Shape out;
    try {
      out = L.output_shape(in);
    } catch (const Error& e) {
      throw ShapeError(str("Model::compile: layer ", L.describe(), " fed by ", fed_by, " (batch ", probe_batch,
                           "): ", e.what()));
    }
    HALO_CHECK_SHAPE(!out.empty() && out[0] == probe_batch, "Model::compile: layer ", L.describe(), " fed by ",
                     fed_by, " returns shape ", to_string(out), ", which does not keep the batch dimension ",
                     probe_batch, " first");
    node.sample_shape = Shape(out.begin() + 1, out.end());
    for (auto& p : L.parameters()) {
      p.name = node.name + "/" + p.name;
      HALO_CHECK(param_names.insert(p.name).second, "Model::compile: duplicate parameter name '", p.name, "'");
    }
    for (auto& b : L.buffers()) b.name = node.name + "/" + b.name;
  }

  // A node's gradient is needed when a parameter lies in it or upstream of it; model
  // inputs need none, so the first layers skip their data gradient.
  needs_grad_.assign(nodes_.size(), false);
  last_use_.assign(nodes_.size(), -1);
  for (size_t i = 0; i < nodes_.size(); ++i) {
    auto& node = nodes_[i];
    if (!node.layer) continue;
    bool any = !node.layer->parameters().empty();
    std::vector<bool> in_needs;
    for (int j : node.inputs) {
      in_needs.push_back(needs_grad_[size_t(j)]);
      any = any || needs_grad_[size_t(j)];
      last_use_[size_t(j)] = int(i);
    }
    needs_grad_[i] = any;
    node.layer->set_input_needs_grad(in_needs);
  }
  compiled_ = true;
  for (auto& node : nodes_)
    if (node.layer) node.layer->set_training(training_);
}

void Model::ensure_compiled() {
  if (!compiled_) compile();
}

// ---------------------------------------------------------------- running

void Model::init(uint64_t seed) {
  ensure_compiled();
  for (auto& node : nodes_)
    if (node.layer) node.layer->init_parameters(seed);
}

Tensor Model::forward(const Tensor& x) { return forward(std::vector<Tensor>{x}); }

Tensor Model::forward(const std::vector<Tensor>& inputs) {
  ensure_compiled();
  HALO_CHECK_SHAPE(inputs.size() == input_nodes_.size(), "Model::forward: the model has ", input_nodes_.size(),
                   " input(s), got ", inputs.size(), " tensor(s)");
  activations_.assign(nodes_.size(), Tensor());
  int64_t batch = -1;
  for (size_t k = 0; k < inputs.size(); ++k) {
    const Node& in = nodes_[size_t(input_nodes_[k])];
    const Tensor& x = inputs[k];
    HALO_CHECK_SHAPE(x.defined(), "Model::forward: input '", in.name, "' is undefined");
    if (batch < 0) batch = x.dim() > 0 ? x.size(0) : 0;
    HALO_CHECK_SHAPE(x.shape() == with_batch(batch, in.sample_shape), "Model::forward: input '", in.name, "' is ",
                     x.str(), ", expected [N", (in.sample_shape.empty() ? "" : ","),
                     to_string(in.sample_shape).substr(1), " with one batch size N for all inputs");
    HALO_CHECK_SHAPE(x.device() == device_, "Model::forward: input '", in.name, "' is on ", x.device().str(),
                     " but the model is on ", device_.str(), "; move the batch with Tensor::to(model.device())");
    activations_[size_t(input_nodes_[k])] = x;
  }
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const Node& node = nodes_[i];
    if (!node.layer) continue;
    std::vector<Tensor> xs;
    xs.reserve(node.inputs.size());
    for (int j : node.inputs) xs.push_back(activations_[size_t(j)]);
    const double t0 = layer_timer_ ? now_seconds() : 0.0;
    Tensor y = node.layer->forward(xs);
    if (layer_timer_) layer_timer_(node.name, false, now_seconds() - t0);
    HALO_CHECK_SHAPE(y.defined() && y.shape() == with_batch(batch, node.sample_shape), "Model::forward: layer ",
                     node.layer->describe(), " returned ", (y.defined() ? y.str() : "an undefined tensor"),
                     " but its output_shape says ", to_string(with_batch(batch, node.sample_shape)));
    activations_[i] = std::move(y);
    if (keep_activations_) continue;
    // Release what no later layer reads (layers keep what their backward needs).
    xs.clear();
    for (int j : node.inputs)
      if (last_use_[size_t(j)] == int(i) && j != output_) activations_[size_t(j)] = Tensor();
    if (last_use_[i] < 0 && int(i) != output_) activations_[i] = Tensor();
  }
  batch_output_shape_ = with_batch(batch, nodes_[size_t(output_)].sample_shape);
  backward_pending_ = training_;
  return activations_[size_t(output_)];
}

std::vector<Parameter*> Model::layer_parameters(int node) {
  std::vector<Parameter*> ps;
  for (auto& p : nodes_[size_t(node)].layer->parameters()) ps.push_back(&p);
  return ps;
}

void Model::backward(const Tensor& grad_output) {
  HALO_CHECK(compiled_ && training_, "Model::backward: the model is in eval mode; call model.train() before the "
                                     "forward pass whose gradients you need");
  HALO_CHECK(backward_pending_, "Model::backward: no training forward pass to go back through (backward runs "
                                "once per forward)");
  HALO_CHECK_SHAPE(grad_output.defined() && grad_output.shape() == batch_output_shape_,
                   "Model::backward: gradient of the output '", nodes_[size_t(output_)].name, "' is ",
                   (grad_output.defined() ? grad_output.str() : "undefined"), ", expected shape ",
                   to_string(batch_output_shape_));
  backward_pending_ = false;

  std::vector<Tensor> grads(nodes_.size());
  std::vector<bool> owned(nodes_.size(), false);  // may be added into in place
  grads[size_t(output_)] = grad_output;
  for (size_t i = nodes_.size(); i-- > 0;) {
    const Node& node = nodes_[i];
    if (node.layer && needs_grad_[i] && grads[i].defined()) {
      Layer& L = *node.layer;
      const double t0 = layer_timer_ ? now_seconds() : 0.0;
      std::vector<Tensor> gx = L.backward(grads[i]);
      if (layer_timer_) layer_timer_(node.name, true, now_seconds() - t0);
      HALO_CHECK(gx.size() == node.inputs.size(), "Model::backward: layer ", L.describe(), " returned ", gx.size(),
                 " input gradient(s) for ", node.inputs.size(), " input(s)");
      for (size_t k = 0; k < gx.size(); ++k) {
        const size_t j = size_t(node.inputs[k]);
        if (!needs_grad_[j]) continue;
        HALO_CHECK(gx[k].defined(), "Model::backward: layer ", L.describe(), " returned no gradient for input ", k,
                   " ('", nodes_[j].name, "'), which needs one");
        if (!grads[j].defined()) {
          grads[j] = std::move(gx[k]);
        } else {
          // A node read by several layers: sum the contributions. A layer may return the
          // same tensor for two inputs (Add), so never add into a tensor we did not make.
          if (!owned[j]) {
            grads[j] = grads[j].clone();
            owned[j] = true;
          }
          add_into(grads[j], gx[k], "Model::backward: node '" + nodes_[j].name + "'");
        }
      }
    }
    // Every consumer of node i comes later and has run: its output and gradient can go.
    grads[i] = Tensor();
    if (int(i) != output_) activations_[i] = Tensor();
    if (node.layer && !node.layer->parameters().empty() && !hooks_.empty()) {
      auto ready = layer_parameters(int(i));
      for (auto& h : hooks_) h.second(ready);
    }
  }
}

int Model::add_grad_ready_hook(GradReadyHook hook) {
  hooks_.emplace_back(next_hook_id_, std::move(hook));
  return next_hook_id_++;
}

void Model::remove_grad_ready_hook(int id) {
  hooks_.erase(std::remove_if(hooks_.begin(), hooks_.end(), [&](const auto& h) { return h.first == id; }),
               hooks_.end());
}

std::vector<std::vector<Parameter*>> Model::grad_ready_order() {
  ensure_compiled();
  std::vector<std::vector<Parameter*>> order;
  for (size_t i = nodes_.size(); i-- > 0;)
    if (nodes_[i].layer && !nodes_[i].layer->parameters().empty()) order.push_back(layer_parameters(int(i)));
  return order;
}

const Tensor& Model::activation(int node) const {
  HALO_CHECK(node >= 0 && node < int(activations_.size()), "Model::activation: no node ", node,
             " in the last forward pass");
  return activations_[size_t(node)];
}

// ---------------------------------------------------------------- state

void Model::zero_grad() {
  for (Parameter* p : parameters())
    if (p->grad.defined()) p->grad.zero_();
}

void Model::train(bool on) {
  training_ = on;
  if (!on) backward_pending_ = false;
  for (auto& node : nodes_)
    if (node.layer) node.layer->set_training(on);
}

void Model::to(Device dev) {
  for (auto& node : nodes_)
    if (node.layer) node.layer->to(dev);
  device_ = dev;
  activations_.assign(nodes_.size(), Tensor());
  backward_pending_ = false;
}

std::vector<Parameter*> Model::parameters() {
  ensure_compiled();
  std::vector<Parameter*> ps;
  for (auto& node : nodes_)
    if (node.layer)
      for (auto& p : node.layer->parameters()) ps.push_back(&p);
  return ps;
}

std::vector<Buffer*> Model::buffers() {
  ensure_compiled();
  std::vector<Buffer*> bs;
  for (auto& node : nodes_)
    if (node.layer)
      for (auto& b : node.layer->buffers()) bs.push_back(&b);
  return bs;
}

int64_t Model::parameter_count() {
  int64_t n = 0;
  for (Parameter* p : parameters()) n += p->value.numel();
  return n;
}

Layer& Model::layer(const std::string& name) {
  int i = find(name);
  HALO_CHECK(i >= 0 && nodes_[size_t(i)].layer, "Model::layer: no layer named '", name, "'");
  return *nodes_[size_t(i)].layer;
}

Shape Model::output_sample_shape() const {
  HALO_CHECK(compiled_, "Model::output_sample_shape: call compile() first");
  return nodes_[size_t(output_)].sample_shape;
}

double Model::forward_flops_per_sample() const {
  HALO_CHECK(compiled_, "Model::forward_flops_per_sample: call compile() first");
  double total = 0;
  for (const auto& node : nodes_) {
    if (!node.layer) continue;
    std::vector<Shape> in;
    for (int i : node.inputs) in.push_back(with_batch(1, nodes_[size_t(i)].sample_shape));
    total += node.layer->forward_flops(in);
  }
  return total;
}

std::string Model::summary() const {
  HALO_CHECK(compiled_, "Model::summary: call compile() first");
  struct Row {
    std::string name, type, shape, params, mflops;
  };
  std::vector<Row> rows;
  int64_t total_params = 0;
  double total_flops = 0;
  char buf[64];
  for (const auto& node : nodes_) {
    Row r{node.name, node.layer ? node.layer->type() : "Input", to_string(node.sample_shape), "", ""};
    if (node.layer) {
      int64_t np = 0;
      for (auto& p : node.layer->parameters()) np += p.value.numel();
      std::vector<Shape> in;
      for (int i : node.inputs) in.push_back(with_batch(1, nodes_[size_t(i)].sample_shape));
      const double fl = node.layer->forward_flops(in);
      total_params += np;
      total_flops += fl;
      r.params = std::to_string(np);
      std::snprintf(buf, sizeof buf, "%.3f", fl / 1e6);
      r.mflops = buf;
    }
    rows.push_back(std::move(r));
  }
  std::snprintf(buf, sizeof buf, "%.3f", total_flops / 1e6);
  Row total{"total", "", "", std::to_string(total_params), buf};
  Row head{"name", "type", "output (per sample)", "params", "MFLOP/sample"};
  size_t w[5] = {0, 0, 0, 0, 0};
  auto widen = [&](const Row& r) {
    w[0] = std::max(w[0], r.name.size());
    w[1] = std::max(w[1], r.type.size());
    w[2] = std::max(w[2], r.shape.size());
    w[3] = std::max(w[3], r.params.size());
    w[4] = std::max(w[4], r.mflops.size());
  };
  widen(head);
  widen(total);
  for (const auto& r : rows) widen(r);
  auto pad = [](const std::string& s, size_t n, bool right) {
    std::string fill(n > s.size() ? n - s.size() : 0, ' ');
    return right ? fill + s : s + fill;
  };
  auto line = [&](const Row& r) {
    return pad(r.name, w[0], false) + "  " + pad(r.type, w[1], false) + "  " + pad(r.shape, w[2], false) + "  " +
           pad(r.params, w[3], true) + "  " + pad(r.mflops, w[4], true) + "\n";
  };
  const std::string rule(w[0] + w[1] + w[2] + w[3] + w[4] + 8, '-');
  std::string out = line(head) + rule + "\n";
  for (const auto& r : rows) out += line(r);
  out += rule + "\n" + line(total);
  return out;
}

}  // namespace halo::nn
