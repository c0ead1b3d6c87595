// A simulation code's view of Halo: it holds its fields in memory, defines a small 3D CNN,
// hands the arrays to Halo through the Dataset interface and trains data-parallel with
// Trainer::step from its own loop (no files, no fit()). Run on 2 ranks; exits non-zero
// unless the loss falls.
#include <mpi.h>

#include <cmath>
#include <cstdio>
#include <memory>

#include "halo/data/loader.hpp"
#include "halo/data/memory.hpp"
#include "halo/dist/communicator.hpp"
#include "halo/nn/activation.hpp"
#include "halo/nn/conv.hpp"
#include "halo/nn/linear.hpp"
#include "halo/nn/losses.hpp"
#include "halo/nn/model.hpp"
#include "halo/nn/pool.hpp"
#include "halo/nn/structure.hpp"
#include "halo/optim/adam.hpp"
#include "halo/train/trainer.hpp"

namespace {

// "Simulation output": 64 fields of 1 x 8^3 whose target is their mean and amplitude.
void simulate(halo::Tensor& fields, halo::Tensor& targets, int rank) {
  const int64_t n = fields.size(0), voxels = 512;
  for (int64_t i = 0; i < n; ++i) {
    const double amp = 0.2 + 0.8 * double((i * 7 + rank * 3) % 11) / 10.0;
    const double mean = 0.1 * double((i * 5 + rank) % 7) - 0.3;
    for (int64_t v = 0; v < voxels; ++v)
      fields.data<float>()[i * voxels + v] = float(mean + amp * std::sin(0.05 * double(v * (i % 5 + 1))));
    targets.data<float>()[2 * i] = float(mean);
    targets.data<float>()[2 * i + 1] = float(amp);
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace halo;
  dist::MpiSession mpi(&argc, &argv);
  dist::Communicator comm(MPI_COMM_WORLD);
  try {
    Tensor fields = Tensor::empty({64, 1, 8, 8, 8});
    Tensor targets = Tensor::empty({64, 2});
    simulate(fields, targets, comm.rank());
    // Each rank's own fields: the data set is not sharded, every rank trains on its subdomain.
    auto ds = std::make_shared<data::ArrayDataset>(fields, targets, "fields");
    data::DataLoader batches(ds, {.batch_size = 8, .shard = {.seed = 1}, .comm = dist::Communicator(MPI_COMM_SELF)});

    nn::Model model;
    model.input({1, 8, 8, 8});
    nn::ConvOptions same;
    same.padding = 1;
    model.append(std::make_shared<nn::Conv3d>(1, 4, 3, same), "conv1");
    model.append(std::make_shared<nn::ReLU>(), "relu1");
    model.append(std::make_shared<nn::MaxPool3d>(2), "pool1");
    model.append(std::make_shared<nn::Conv3d>(4, 8, 3, same), "conv2");
    model.append(std::make_shared<nn::ReLU>(), "relu2");
    model.append(std::make_shared<nn::Flatten>(), "flatten");
    model.append(std::make_shared<nn::Linear>(8 * 64, 2), "head");
    model.compile();
    model.init(7);
    optim::Adam adam(model.parameters(), {.lr = 2e-3});
    nn::MSELoss loss;
    train::TrainerOptions options;
    options.progress = false;
    train::Trainer trainer(comm, model, adam, loss, options);

    double first = 0, last = 0;
    for (int epoch = 0; epoch < 12; ++epoch) {
      double sum = 0;
      int steps = 0;
      batches.start_epoch(epoch);
      while (const data::Batch* b = batches.next()) {
        const train::StepResult r = trainer.step(*b);
        sum += r.loss;
        ++steps;
      }
      comm.allreduce_sum(&sum, 1, "epoch loss");
      const double mean = sum / double(steps * comm.size());
      if (epoch == 0) first = mean;
      last = mean;
    }
    if (comm.rank() == 0) std::printf("in-memory training on %d ranks: loss %.5f -> %.5f\n", comm.size(), first, last);
    if (!(last < 0.5 * first)) {
      std::fprintf(stderr, "halo-consumer-train: the loss did not fall (%g -> %g)\n", first, last);
      return 1;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "halo-consumer-train: %s\n", e.what());
    return 1;
  }
  return 0;
}
