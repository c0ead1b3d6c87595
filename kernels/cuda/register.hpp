// The cuda backend's op families, each filled in by its kernels/cuda/<family>_ops.cpp.
#pragma once
#include "op_table.hpp"

namespace halo::kernels::cuda_ops {

void register_elementwise(ops::OpTable& t);
void register_conv(ops::OpTable& t);
void register_pool(ops::OpTable& t);
void register_batchnorm(ops::OpTable& t);
void register_matmul(ops::OpTable& t);
void register_loss(ops::OpTable& t);
void register_metrics(ops::OpTable& t);
void register_concat(ops::OpTable& t);
void register_upsample(ops::OpTable& t);
void register_optim(ops::OpTable& t);

}  // namespace halo::kernels::cuda_ops
