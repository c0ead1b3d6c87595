// DataLoader: this rank's shard of any Dataset (source.hpp: HDF5 files, packed shards,
// arrays in memory, callbacks, Kokkos views), in batches, read ahead on I/O threads.
//
//   auto ds = std::make_shared<H5Dataset>(list_files(dir), cosmoflow_mlperf());
//   DataLoader train(ds, {.batch_size = 4, .shard = {.seed = 1}, .comm = comm});
//   for (int64_t e = 0; e < epochs; ++e) {
//     train.start_epoch(e);
//     while (const Batch* b = train.next()) step(b->x, b->y);
//   }
//
// `prefetch` batches are filled ahead by `io_threads` background threads into buffers
// allocated once (prefetch + 1 of them); the batch next() returns stays valid until the
// following next() or start_epoch(). Samples are float32 (N, C, spatial...), or bfloat16 with
// LoaderOptions::dtype; labels float32 (N, L) or int32 class maps (N, spatial...). Every rank gets the same number of batches
// of the same sizes (the sampler decides them globally, see sampler.hpp): by default the
// epoch is padded by repeating samples from its start, and a batch's rows from Batch::real
// on are such repeats (left out of validation metrics); with drop_last_batch the remainder
// is dropped so that every batch is full. An error in a reader thread is rethrown by next()
// as IOError naming the rank, the file and the dataset.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "halo/data/dataset.hpp"  // H5Dataset, the usual source (HDF5-free header)
#include "halo/data/memory.hpp"
#include "halo/data/sampler.hpp"
#include "halo/data/source.hpp"
#include "halo/dist/communicator.hpp"
#include "halo/tensor/tensor.hpp"

namespace halo::data {

/// What the loader does with a sample whose read throws BadSampleError (the value checks of
/// H5Dataset::read, ArrayDataset and CallbackDataset: NaN/Inf values or targets, negative
/// counts before log1p).
enum class BadSamplePolicy {
  error,  ///< next() throws IOError naming the rank, file, dataset, sample and what is wrong
  /// The sample is replaced by the next good one of this rank's epoch order (wrapping
  /// around), so batches keep their size and every rank its number of steps; it is logged
  /// once (rank, file, dataset, sample, reason), never read again, and counted in
  /// Batch::skipped / LoaderStats::skipped_samples every epoch it comes up.
  skip,
};

/// Staging copies this rank's (then fixed) shard before the first epoch: into memory, or
/// as a packed float32 shard in a node-local directory.
enum class Staging { none, memory, directory };

struct LoaderOptions {
  int64_t batch_size = 1;
  ShardOptions shard;
  int prefetch = 2;    ///< batches read ahead (>= 1)
  int io_threads = 2;  ///< background reader threads (>= 1)
  Staging staging = Staging::none;
  std::string stage_dir;  ///< Staging::directory: node-local path (created)
  /// Drop the samples that do not fill a batch on every rank (at most ranks * batch_size - 1
  /// per epoch) instead of padding the epoch with repeated samples. Same as shard.drop_last.
  bool drop_last_batch = false;
  /// The ranks the data is sharded over (the trainer's communicator). Unset: MPI_COMM_WORLD
  /// when MPI is initialised, else rank 0 of 1 (a single process needs no MPI).
  std::optional<dist::Communicator> comm;
  /// Memory format of delivered batches with spatial axes (the logical shape is always
  /// (N, C, spatial...)). Unset: the stored order, so the loader never transposes —
  /// channels-last for the MLPerf CosmoFlow (DHWC) and DeepCAM (HWC) files, contiguous for
  /// channel-first files (LBANN). Set it to channels_last to move the transpose of
  /// channel-first files onto the I/O threads (the CPU convolutions want channels-last).
  std::optional<MemoryFormat> memory_format;
  /// Batches in page-locked host memory (CUDA builds with a visible GPU; ignored otherwise),
  /// so their copies to a GPU run by DMA at full link speed. The drivers set it when they
  /// train on a GPU.
  bool pin_memory = false;
  BadSamplePolicy on_bad_sample = BadSamplePolicy::error;
  /// Spatial parallelism: deliver only this block of every sample (Dataset::read_block; an
  /// HDF5 source reads only its hyperslab). Batches are then (N, C, block...), class-map
  /// labels (N, block...), label vectors whole; the read statistics count the block's bytes.
  /// Staging stages the block only. A block outside the samples throws ShapeError here.
  std::optional<SpatialBlock> block;
  /// Element type of delivered samples: f32, or bf16 for mixed-precision training (the
  /// drivers' training.precision=bf16). bf16 samples are rounded (to nearest even) on the I/O
  /// threads as each is read, so the training thread never converts them, and the batches
  /// take half the memory and half the bytes of a copy to a GPU. Transforms (log1p,
  /// normalisation) and the value checks of BadSamplePolicy run in f32 first; staging keeps
  /// f32. Labels are not affected.
  DType dtype = DType::f32;
};

struct Batch {
  Tensor x;  ///< f32 or LoaderOptions::dtype (n, C, spatial...); with LoaderOptions::block (n, C, block...)
  Tensor y;  ///< f32 (n, L) or i32 class maps (n, spatial...); with a block (n, block...)
  int64_t size = 0;   ///< n: batch_size, or fewer for the last one (the same on every rank)
  int64_t index = 0;  ///< batch number within the epoch
  std::vector<int64_t> samples;  ///< dataset indices of the rows (replacements included)
  /// Rows [0, real) are this epoch's own samples; rows [real, size) are padding that repeats
  /// samples another rank (or this one) already has, so that every rank runs the same
  /// number of steps. Train on them; leave them out of anything that counts samples.
  int64_t real = 0;
  int64_t skipped = 0;  ///< bad samples of this batch replaced by others (BadSamplePolicy::skip)
  const Dataset* source = nullptr;  ///< the data set the rows come from (names them in errors)
};

struct LoaderStats {
  double wait_seconds = 0;   ///< time next() blocked because no batch was ready
  double read_seconds = 0;   ///< reader-thread time (summed over threads)
  double stage_seconds = 0;  ///< time spent staging
  int64_t samples = 0, batches = 0;
  double bytes = 0;  ///< stored bytes read (samples and labels)
  int64_t skipped_samples = 0;  ///< bad samples replaced, in the batches handed out
};

class DataLoader {
 public:
  DataLoader(std::shared_ptr<const Dataset> dataset, LoaderOptions opt);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  /// Starts reading epoch `epoch` (stages first if asked and not yet done).
  void start_epoch(int64_t epoch);
  /// The next batch of the epoch, or nullptr at its end.
  const Batch* next();
  /// Batches per epoch: the same on every rank (decided by the sampler from the global
  /// sample count, the ranks and the batch size, never from this rank's shard).
  int64_t batches_per_epoch() const;
  /// Samples per batch on this rank (LoaderOptions::batch_size); times the ranks: the global batch.
  int64_t batch_size() const;
  /// "17 samples per rank in 5 batches, 1 sample repeated to even out the ranks": for logs.
  std::string describe_epoch() const;
  const ShardedSampler& sampler() const;
  const Dataset& dataset() const;
  /// Copies this rank's shard into memory or the stage directory now (collective over
  /// nothing: each rank stages its own shard).
  void stage();
  /// Statistics of the current epoch, and since construction.
  LoaderStats epoch_stats() const;
  LoaderStats total_stats() const;
  int rank() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace halo::data
