// The whole public API in one include, for drivers and quick experiments. Libraries that
// link Halo into larger codes may include the per-area headers instead. Every header here
// compiles with only MPI (and, in CUDA builds, the CUDA runtime) on the include path.
//
// Generated: regenerate with `cmake -DMODE=write -P tests/headers/umbrella.cmake` after adding
// or removing a public header (the test halo_umbrella_complete fails until then).
#pragma once

#include "halo/config.hpp"

#include "halo/tensor/allocator.hpp"
#include "halo/tensor/device.hpp"
#include "halo/tensor/dtype.hpp"
#include "halo/tensor/shape.hpp"
#include "halo/tensor/tensor.hpp"

#include "halo/util/config.hpp"
#include "halo/util/error.hpp"
#include "halo/util/log.hpp"
#include "halo/util/random.hpp"
#include "halo/util/threads.hpp"
#include "halo/util/timer.hpp"

#include "halo/ops/activation.hpp"
#include "halo/ops/batchnorm.hpp"
#include "halo/ops/concat.hpp"
#include "halo/ops/conv.hpp"
#include "halo/ops/elementwise.hpp"
#include "halo/ops/loss.hpp"
#include "halo/ops/matmul.hpp"
#include "halo/ops/metrics.hpp"
#include "halo/ops/pool.hpp"
#include "halo/ops/upsample.hpp"

#include "halo/nn/activation.hpp"
#include "halo/nn/batchnorm.hpp"
#include "halo/nn/conv.hpp"
#include "halo/nn/dropout.hpp"
#include "halo/nn/init.hpp"
#include "halo/nn/layer.hpp"
#include "halo/nn/linear.hpp"
#include "halo/nn/loss.hpp"
#include "halo/nn/losses.hpp"
#include "halo/nn/model.hpp"
#include "halo/nn/parameter.hpp"
#include "halo/nn/pool.hpp"
#include "halo/nn/structure.hpp"
#include "halo/nn/upsample.hpp"

#include "halo/optim/adam.hpp"
#include "halo/optim/clip.hpp"
#include "halo/optim/lamb.hpp"
#include "halo/optim/lars.hpp"
#include "halo/optim/loss_scaler.hpp"
#include "halo/optim/optimizer.hpp"
#include "halo/optim/schedule.hpp"
#include "halo/optim/sgd.hpp"
#include "halo/optim/update_rules.hpp"

#include "halo/dist/communicator.hpp"
#include "halo/dist/grad_sync.hpp"
#include "halo/dist/metrics.hpp"
#include "halo/dist/model_sync.hpp"
#include "halo/dist/nccl.hpp"
#include "halo/dist/root_read.hpp"
#include "halo/dist/step_guard.hpp"
#include "halo/dist/sync_batchnorm.hpp"
#include "halo/dist/watchdog.hpp"

#include "halo/data/dataset.hpp"
#include "halo/data/format.hpp"
#include "halo/data/h5.hpp"
#include "halo/data/inspect.hpp"
#include "halo/data/loader.hpp"
#include "halo/data/packed.hpp"
#include "halo/data/sampler.hpp"
#include "halo/data/synthetic.hpp"

#include "halo/train/checkpoint.hpp"
#include "halo/train/class_weights.hpp"
#include "halo/train/device_batches.hpp"
#include "halo/train/device_support.hpp"
#include "halo/train/driver.hpp"
#include "halo/train/metrics_log.hpp"
#include "halo/train/mllog.hpp"
#include "halo/train/progress.hpp"
#include "halo/train/stop_signal.hpp"
#include "halo/train/trainer.hpp"

#include "halo/models/cosmoflow.hpp"
#include "halo/models/deeplabv3.hpp"

#include "halo/cuda/runtime.hpp"
