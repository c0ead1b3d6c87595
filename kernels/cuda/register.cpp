// The cuda backend: the device backend of the tensor core (device_backend.cpp) and every op
// family's kernels. Registering touches no GPU.
#include "backends.hpp"
#include "cuda/register.hpp"

namespace halo::cuda {
void register_backend();  // device_backend.cpp
}

namespace halo::kernels {

void register_cuda() {
  cuda::register_backend();
  ops::OpTable& t = ops::op_table_to_fill(DeviceKind::cuda);
  cuda_ops::register_elementwise(t);
  cuda_ops::register_conv(t);
  cuda_ops::register_pool(t);
  cuda_ops::register_batchnorm(t);
  cuda_ops::register_matmul(t);
  cuda_ops::register_loss(t);
  cuda_ops::register_metrics(t);
  cuda_ops::register_concat(t);
  cuda_ops::register_upsample(t);
  cuda_ops::register_optim(t);
}

}  // namespace halo::kernels
