// The cpu backend: every op family has kernels (the host allocator needs no registration).
#include "cpu/register.hpp"

#include "backends.hpp"

namespace halo::kernels {

void register_cpu() {
  ops::OpTable& t = ops::op_table_to_fill(DeviceKind::cpu);
  cpu::register_elementwise(t);
  cpu::register_conv(t);
  cpu::register_pool(t);
  cpu::register_batchnorm(t);
  cpu::register_matmul(t);
  cpu::register_loss(t);
  cpu::register_metrics(t);
  cpu::register_concat(t);
  cpu::register_upsample(t);
  cpu::register_optim(t);
}

}  // namespace halo::kernels
