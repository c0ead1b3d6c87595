// DeviceBatchQueue on a GPU: the batches it copies ahead on its copy stream hold exactly
// what the loader delivers on the host, in order, including the short last batch, while the
// loader reuses its pinned buffers; and work queued on the compute stream after next() sees
// the copied values.
#include <catch2/catch.hpp>

#include <filesystem>
#include <unistd.h>

#include "gpu_test_skip.hpp"
#include "halo/cuda/runtime.hpp"
#include "halo/data/loader.hpp"
#include "halo/data/synthetic.hpp"
#include "halo/train/device_batches.hpp"

using namespace halo;
using namespace halo::data;
namespace fs = std::filesystem;

TEST_CASE("DeviceBatchQueue delivers the loader's batches on the GPU, in order") {
  const auto dir = (fs::temp_directory_path() / ("halo-test-devbatch-" + std::to_string(::getpid()))).string();
  fs::remove_all(dir);
  GenerateOptions g;
  g.format = "deepcam";
  g.out_dir = dir;
  g.samples = 7;
  g.height = 12;
  g.width = 16;
  generate(g);
  auto ds = std::make_shared<H5Dataset>(list_files(dir), deepcam());
  LoaderOptions o;
  o.batch_size = 2;
  o.shard.seed = 3;
  LoaderOptions pinned = o;
  pinned.pin_memory = true;
  DataLoader reference(ds, o), loader(ds, pinned);

  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    reference.start_epoch(epoch);
    loader.start_epoch(epoch);
    train::DeviceBatchQueue q(loader, Device::cuda(0));
    int batches = 0;
    while (const train::DeviceBatch* b = q.next()) {
      const Batch* want = reference.next();
      REQUIRE(want != nullptr);
      CHECK(b->x.device() == Device::cuda(0));
      CHECK(b->y.device() == Device::cuda(0));
      CHECK(b->size == want->size);
      CHECK(b->x.shape() == want->x.shape());
      // Reading back goes through the compute stream, which next() ordered after the copy.
      CHECK(b->x.to(Device::cpu()).to_vector<float>() == want->x.to_vector<float>());
      CHECK(b->y.to(Device::cpu()).to_vector<int32_t>() == want->y.to_vector<int32_t>());
      ++batches;
    }
    CHECK(batches == 4);  // 7 samples in batches of 2: the last one holds 1
    CHECK(reference.next() == nullptr);
  }
  fs::remove_all(dir);
}

TEST_CASE("DeviceBatchQueue refuses the CPU") {
  const auto dir = (fs::temp_directory_path() / ("halo-test-devbatch-cpu-" + std::to_string(::getpid()))).string();
  fs::remove_all(dir);
  GenerateOptions g;
  g.format = "deepcam";
  g.out_dir = dir;
  g.samples = 2;
  g.height = 8;
  g.width = 8;
  generate(g);
  auto ds = std::make_shared<H5Dataset>(list_files(dir), deepcam());
  LoaderOptions o;
  o.batch_size = 1;
  DataLoader loader(ds, o);
  CHECK_THROWS_AS(train::DeviceBatchQueue(loader, Device::cpu()), ConfigError);
  fs::remove_all(dir);
}
