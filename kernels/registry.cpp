// The op tables of every device kind and the one-time registration of the built-in backends.
#include <mutex>

#include "backends.hpp"
#include "op_table.hpp"
#include "halo/util/error.hpp"

namespace halo::kernels {

void register_builtin_backends() {
  static std::once_flag once;
  std::call_once(once, [] {
    register_cpu();
    register_cuda();
  });
}

std::string missing_backend_hint(DeviceKind kind) {
  if (kind == DeviceKind::cuda) return "this build of Halo has no CUDA support (rebuild with -DHALO_ENABLE_CUDA=ON)";
  return "this build of Halo has no backend for this device";
}

}  // namespace halo::kernels

namespace halo::ops {

namespace {
constexpr int kKinds = 2;  // DeviceKind::cpu, DeviceKind::cuda
OpTable g_tables[kKinds];

int slot(DeviceKind kind) { return kind == DeviceKind::cpu ? 0 : 1; }
}  // namespace

OpTable& op_table_to_fill(DeviceKind kind) { return g_tables[slot(kind)]; }

const OpTable& op_table(DeviceKind kind) {
  kernels::register_builtin_backends();
  return g_tables[slot(kind)];
}

const char* name(OpFamily f) {
  switch (f) {
    case OpFamily::elementwise: return "elementwise";
    case OpFamily::conv: return "conv";
    case OpFamily::pool: return "pool";
    case OpFamily::batchnorm: return "batchnorm";
    case OpFamily::matmul: return "matmul";
    case OpFamily::loss: return "loss";
    case OpFamily::metrics: return "metrics";
    case OpFamily::concat: return "concat";
    case OpFamily::upsample: return "upsample";
    case OpFamily::optim: return "optim";
  }
  return "?";
}

const std::vector<OpFamily>& all_op_families() {
  static const std::vector<OpFamily> all = {OpFamily::elementwise, OpFamily::conv,   OpFamily::pool,
                                            OpFamily::batchnorm,   OpFamily::matmul, OpFamily::loss,
                                            OpFamily::metrics,     OpFamily::concat, OpFamily::upsample,
                                            OpFamily::optim};
  return all;
}

bool has_kernels(OpFamily f, DeviceKind kind) {
  const OpTable& t = op_table(kind);
  switch (f) {
    case OpFamily::elementwise: return t.elementwise != nullptr;
    case OpFamily::conv: return t.conv != nullptr;
    case OpFamily::pool: return t.pool != nullptr;
    case OpFamily::batchnorm: return t.batchnorm != nullptr;
    case OpFamily::matmul: return t.matmul != nullptr;
    case OpFamily::loss: return t.loss != nullptr;
    case OpFamily::metrics: return t.metrics != nullptr;
    case OpFamily::concat: return t.concat != nullptr;
    case OpFamily::upsample: return t.upsample != nullptr;
    case OpFamily::optim: return t.optim != nullptr;
  }
  return false;
}

bool has_backend(DeviceKind kind) {
  for (OpFamily f : all_op_families())
    if (has_kernels(f, kind)) return true;
  return false;
}

void throw_no_kernels(OpFamily family, Device dev, std::string_view who) {
  if (!has_backend(dev.kind))
    throw ShapeError(str(who, ": ", kernels::missing_backend_hint(dev.kind), ", so it has no kernels for ", dev.str()));
  throw ShapeError(str(who, ": this build of Halo has no ", name(family), " kernels for ", dev.str(),
                       "; move the tensors to a device that has them"));
}

}  // namespace halo::ops
