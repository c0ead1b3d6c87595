// The whole public API in one include, for drivers and quick experiments. Libraries that
// link Halo into larger codes may include the per-area headers instead.
#pragma once

#include "halo/config.hpp"
#include "halo/tensor/tensor.hpp"
#include "halo/util/config.hpp"
#include "halo/util/error.hpp"
#include "halo/util/log.hpp"
#include "halo/util/random.hpp"
#include "halo/util/threads.hpp"
#include "halo/util/timer.hpp"

#include "halo/nn/activation.hpp"
#include "halo/nn/batchnorm.hpp"
#include "halo/nn/conv.hpp"
#include "halo/nn/dropout.hpp"
#include "halo/nn/init.hpp"
#include "halo/nn/linear.hpp"
#include "halo/nn/losses.hpp"
#include "halo/nn/model.hpp"
#include "halo/nn/pool.hpp"
#include "halo/nn/structure.hpp"
#include "halo/nn/upsample.hpp"

#include "halo/optim/adam.hpp"
#include "halo/optim/clip.hpp"
#include "halo/optim/lamb.hpp"
#include "halo/optim/lars.hpp"
#include "halo/optim/schedule.hpp"
#include "halo/optim/sgd.hpp"

#include "halo/dist/communicator.hpp"
#include "halo/dist/grad_sync.hpp"
#include "halo/dist/metrics.hpp"
#include "halo/dist/model_sync.hpp"
#include "halo/dist/step_guard.hpp"
#include "halo/dist/sync_batchnorm.hpp"

#include "halo/data/dataset.hpp"
#include "halo/data/format.hpp"
#include "halo/data/loader.hpp"
#include "halo/data/sampler.hpp"

#include "halo/train/checkpoint.hpp"
#include "halo/train/metrics_log.hpp"
#include "halo/train/progress.hpp"

#include "halo/models/cosmoflow.hpp"
#include "halo/models/deeplabv3.hpp"
