#include "halo/data/loader.hpp"

#include "halo/cuda/runtime.hpp"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <filesystem>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "halo/data/dataset.hpp"

#include "halo/data/packed.hpp"
#include "halo/util/error.hpp"
#include "halo/util/log.hpp"
#include "halo/util/timer.hpp"

namespace halo::data {

namespace {
std::pair<int, int> rank_size(const std::optional<dist::Communicator>& comm) {
  if (comm) return {comm->rank(), comm->size()};
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  if (!init || fin) return {0, 1};
  int r = 0, s = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  MPI_Comm_size(MPI_COMM_WORLD, &s);
  return {r, s};
}

// Axis letters of a staged shard (channel-first, as its axes attribute says): "C" and one
// letter per spatial axis, D/H/W for the usual three.
std::string staged_axes(const Dataset& ds) {
  if (auto* h5 = dynamic_cast<const H5Dataset*>(&ds)) {
    std::string axes = "C";
    for (char a : h5->layout().axes)
      if (a != 'C') axes += a;
    return axes;
  }
  const size_t spatial = ds.sample_shape().size() - 1;
  const std::string letters = spatial <= 3 ? std::string("DHW").substr(3 - spatial) : std::string("ABDEFGHIJKLMNOPQRSTUVWXYZ").substr(0, spatial);
  return "C" + letters;
}

ShardOptions effective(ShardOptions s, const LoaderOptions& o) {
  if (o.staging != Staging::none) s.local_shuffle = true;  // a staged shard must stay put
  // The sampler decides batches per epoch for every rank alike, so it needs the batch size.
  s.batch_size = std::max<int64_t>(o.batch_size, 1);
  s.drop_last = s.drop_last || o.drop_last_batch;
  return s;
}

void add(LoaderStats& a, const LoaderStats& b) {
  a.wait_seconds += b.wait_seconds;
  a.read_seconds += b.read_seconds;
  a.stage_seconds += b.stage_seconds;
  a.samples += b.samples;
  a.batches += b.batches;
  a.bytes += b.bytes;
  a.skipped_samples += b.skipped_samples;
}
}  // namespace


// Everything the reader threads share with next() lives here, so loader.hpp declares no
// thread or lock.
struct DataLoader::Impl {
  struct Slot {
    Tensor x_full, y_full;
    Batch batch;
    int64_t filled = -1;
    std::exception_ptr error;
  };

  std::shared_ptr<const Dataset> ds;
  LoaderOptions opt;
  // One delivered sample and label (the block's with LoaderOptions::block), their sizes in
  // the batch, and the stored bytes a read of both stands for.
  Shape xshape, yshape;
  size_t xn = 0, yb = 0, bytes = 0;
  int rank = 0, size = 1;
  ShardedSampler sampler;
  std::vector<Slot> slots;
  std::vector<int64_t> order;
  int64_t real = 0;  // order[0, real) are real samples, the rest padding
  int64_t nbatches = 0;
  int64_t next_to_fill = 0, consumed = 0, released = 0;
  bool stop = false;
  bool started = false;
  std::vector<std::thread> threads;
  mutable std::mutex mu;
  std::condition_variable cv;
  LoaderStats epoch, total;
  // staging
  bool staged = false;
  std::vector<int64_t> stage_row;  // dataset index -> staged row, -1 if not staged
  std::vector<float> stage_x;
  std::vector<unsigned char> stage_y;
  std::shared_ptr<H5Dataset> stage_ds;
  std::unordered_set<int64_t> bad;  // dataset indices found bad (skip policy), under mu

  Impl(std::shared_ptr<const Dataset> d, LoaderOptions o)
      : ds(std::move(d)),
        opt(std::move(o)),
        rank(rank_size(opt.comm).first),
        size(rank_size(opt.comm).second),
        sampler(ds ? ds->size() : 0, rank, size, effective(opt.shard, opt)) {}

  void stop_workers();
  void worker();
  // `row`: one sample in f32, where bf16 batches (LoaderOptions::dtype) are read before rounding.
  void fill(Slot& s, int64_t b, ReadScratch& scratch, std::vector<float>& row);
  void read_sample(int64_t i, float* x, void* y, ReadScratch& scratch);
  // Reads sample i (its block with opt.block) from the source itself; `last`: channels-last.
  void read_source(int64_t i, float* x, void* y, ReadScratch& scratch, bool last) const;
  // Reads the sample at position `pos` of order, or under BadSamplePolicy::skip the next
  // good one after it; returns the dataset index read and adds the bad original to `skipped`.
  int64_t read_good_sample(int64_t pos, float* x, void* y, ReadScratch& scratch, int64_t& skipped);
  // Under skip: remembers a bad sample (so it is never read again) and logs it the first time.
  void mark_bad(const BadSampleError& e);
  /// Batches are delivered channels-last (the option, for samples with spatial axes).
  bool channels_last() const;
  void stage();
};

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, LoaderOptions opt)
    : impl_(std::make_unique<Impl>(std::move(dataset), std::move(opt))) {
  auto& I = *impl_;
  const auto& ds_ = I.ds;
  const auto& opt_ = I.opt;
  HALO_CHECK_T(ConfigError, ds_ != nullptr, "DataLoader: no dataset");
  HALO_CHECK_T(ConfigError, opt_.batch_size >= 1, "DataLoader: batch_size must be >= 1, got ", opt_.batch_size);
  HALO_CHECK_T(ConfigError, opt_.prefetch >= 1, "DataLoader: prefetch must be >= 1, got ", opt_.prefetch);
  HALO_CHECK_T(ConfigError, opt_.io_threads >= 1, "DataLoader: io_threads must be >= 1, got ", opt_.io_threads);
  HALO_CHECK_T(ConfigError, opt_.staging != Staging::directory || !opt_.stage_dir.empty(),
               "DataLoader: directory staging needs stage_dir (a node-local path)");
  HALO_CHECK_T(ConfigError, !ds_->sample_shape().empty(), "DataLoader: the dataset's samples have no shape");
  HALO_CHECK_T(ConfigError, opt_.dtype == DType::f32 || opt_.dtype == DType::bf16,
               "DataLoader: LoaderOptions::dtype is ", halo::name(opt_.dtype), "; samples are delivered as f32 or bf16");
  if (opt_.block) {
    check_block(*opt_.block, ds_->sample_shape(), "DataLoader: LoaderOptions::block");
    // Replacing a bad sample is a decision each rank takes alone, from its own block's values:
    // the ranks sharing a sample could then train on different samples in one step.
    HALO_CHECK_T(ConfigError, opt_.on_bad_sample == BadSamplePolicy::error,
                 "DataLoader: LoaderOptions::block with on_bad_sample=skip: each rank checks only its own "
                 "block, so the ranks sharing a sample could replace different ones; check the files first "
                 "(halo-data verify) and keep on_bad_sample=error");
    I.xshape = ds_->block_shape(*opt_.block);
    I.yshape = ds_->block_label_shape(*opt_.block);
    I.bytes = ds_->block_stored_bytes(*opt_.block) + ds_->block_label_bytes(*opt_.block);
  } else {
    I.xshape = ds_->sample_shape();
    I.yshape = ds_->label_shape();
    I.bytes = ds_->stored_bytes() + ds_->label_bytes();
  }
  I.xn = size_t(numel(I.xshape));
  I.yb = size_t(numel(I.yshape)) * 4;
  Shape xs{opt_.batch_size}, ys{opt_.batch_size};
  for (auto d : I.xshape) xs.push_back(d);
  for (auto d : I.yshape) ys.push_back(d);
  I.slots.resize(size_t(opt_.prefetch + 1));
  const MemoryFormat fmt = I.channels_last() ? MemoryFormat::channels_last : MemoryFormat::contiguous;
  const bool pin = opt_.pin_memory && cuda::available();
  for (auto& s : I.slots) {
    // touched once here so steady-state batches never page-fault
    if (pin) {  // only with a usable GPU (cuda::available()), so never in a CPU build
      s.x_full = cuda::pinned_empty(xs, opt_.dtype, fmt);
      s.x_full.zero_();
      s.y_full = cuda::pinned_empty(ys, ds_->label_dtype());
      s.y_full.zero_();
      continue;
    }
    s.x_full = Tensor::zeros(xs, opt_.dtype, Device::cpu(), fmt);
    s.y_full = Tensor::zeros(ys, ds_->label_dtype());
  }
}

DataLoader::~DataLoader() { impl_->stop_workers(); }

int64_t DataLoader::batches_per_epoch() const { return impl_->sampler.batches(); }
int64_t DataLoader::batch_size() const { return impl_->opt.batch_size; }
const ShardedSampler& DataLoader::sampler() const { return impl_->sampler; }
const Dataset& DataLoader::dataset() const { return *impl_->ds; }
int DataLoader::rank() const { return impl_->rank; }
void DataLoader::stage() { impl_->stage(); }

std::string DataLoader::describe_epoch() const {
  const ShardedSampler& sampler_ = impl_->sampler;
  const int64_t per_rank = sampler_.shard_size(), nb = sampler_.batches();
  std::string s = str(per_rank, " samples per rank in ", nb, nb == 1 ? " batch" : " batches");
  if (sampler_.padded() > 0)
    s += str(", ", sampler_.padded(), sampler_.padded() == 1 ? " sample" : " samples",
             " repeated to even out the ranks");
  if (sampler_.dropped() > 0) s += str(", ", sampler_.dropped(), " skipped per epoch (drop_last_batch)");
  return s;
}

void DataLoader::Impl::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mu);
    stop = true;
  }
  cv.notify_all();
  for (auto& t : threads) t.join();
  threads.clear();
}

void DataLoader::Impl::stage() {
  if (staged || opt.staging == Staging::none) return;
  Stopwatch sw;
  std::vector<int64_t> mine = sampler.shard(0);  // local-shuffle mode: the same set every epoch
  stage_row.assign(size_t(ds->size()), -1);
  ReadScratch scratch;
  std::vector<float> x(xn);
  std::vector<unsigned char> y(yb);
  std::unique_ptr<PackedWriter> writer;
  std::string path;
  const auto* h5 = dynamic_cast<const H5Dataset*>(ds.get());
  if (opt.staging == Staging::memory) {
    stage_x.resize(mine.size() * size_t(xn));
    stage_y.resize(mine.size() * yb);
  } else {
    std::filesystem::create_directories(opt.stage_dir);
    // Under spatial parallelism the ranks of one grid have the same rank here (they read the
    // same samples) and often one node-local stage_dir: the block tells their files apart.
    std::string block;
    if (opt.block)
      for (size_t a = 0; a < 3; ++a) block += str(a ? "x" : "-block", opt.block->begin[a], "-", opt.block->end[a]);
    path = (std::filesystem::path(opt.stage_dir) / str("halo-stage-rank", rank, block, ".h5")).string();
    PackedDescription d;
    d.axes = staged_axes(*ds);
    d.label_kind = ds->label_dtype() == DType::i32 ? LabelKind::mask : LabelKind::vector;
    d.source_format = h5 ? h5->layout().format : std::string("memory");
    d.origin_files = h5 ? h5->files() : std::vector<std::string>{ds->describe(0)};
    // with a block the staged samples are the block (its shape, its label)
    writer = std::make_unique<PackedWriter>(path, int64_t(mine.size()), xshape, RawType::f32, yshape, d);
  }
  for (size_t k = 0; k < mine.size(); ++k) {
    int64_t i = mine[k];
    float* xp = opt.staging == Staging::memory ? stage_x.data() + k * xn : x.data();
    void* yp = opt.staging == Staging::memory ? static_cast<void*>(stage_y.data() + k * yb) : y.data();
    try {
      // memory staging keeps the delivered format (batches are then plain copies); the
      // packed staging file is channel-first, as its axes attribute says
      read_source(i, xp, yp, scratch, opt.staging == Staging::memory && channels_last());
    } catch (const BadSampleError& e) {
      if (opt.on_bad_sample == BadSamplePolicy::error)
        throw IOError(str("rank ", rank, ": staging: ", e.what(), " (data.on_bad_sample=skip replaces bad samples instead)"));
      mark_bad(e);  // not staged: read_good_sample replaces it without a read
      continue;
    } catch (const Error& e) {
      throw IOError(str("rank ", rank, ": staging: ", e.what()));
    }
    if (writer) {
      if (h5) {
        const SampleRef& r = h5->ref(i);
        writer->write(int64_t(k), xp, yp, {r.file, r.index, r.origin[0], r.origin[1], r.origin[2]});
      } else {
        writer->write(int64_t(k), xp, yp, {0, i, 0, 0, 0});
      }
    }
    stage_row[size_t(i)] = int64_t(k);
    total.bytes += double(bytes);
  }
  if (writer) {
    writer->close();
    ds->close_files();
    stage_ds = std::make_shared<H5Dataset>(std::vector<std::string>{path}, detect_layout(path), Driver::posix);
  }
  staged = true;
  total.stage_seconds += sw.seconds();
}

void DataLoader::Impl::read_sample(int64_t i, float* x, void* y, ReadScratch& scratch) {
  if (staged) {
    int64_t row = stage_row.at(size_t(i));
    HALO_CHECK(row >= 0, "rank ", rank, ": sample ", i, " was not staged on this rank");
    if (stage_ds) {
      stage_ds->read(row, x, y, scratch, channels_last());  // a staged row is already the block
    } else {
      std::memcpy(x, stage_x.data() + size_t(row) * xn, xn * sizeof(float));
      std::memcpy(y, stage_y.data() + size_t(row) * yb, yb);
    }
    return;
  }
  read_source(i, x, y, scratch, channels_last());
}

void DataLoader::Impl::read_source(int64_t i, float* x, void* y, ReadScratch& scratch, bool last) const {
  if (opt.block) ds->read_block(i, *opt.block, x, y, scratch, last);
  else ds->read(i, x, y, scratch, last);
}

void DataLoader::Impl::mark_bad(const BadSampleError& e) {
  bool first = false;
  {
    std::lock_guard<std::mutex> lock(mu);
    first = bad.insert(e.sample()).second;
  }
  if (first) log::warn("rank ", rank, ": skipping bad sample (data.on_bad_sample=skip): ", e.what());
}

int64_t DataLoader::Impl::read_good_sample(int64_t pos, float* x, void* y, ReadScratch& scratch, int64_t& skipped) {
  // Replacing (rather than dropping) a bad sample keeps the batch full and the number of
  // batches of every rank unchanged, so the ranks' steps and allreduces stay matched; the
  // replacement is a function of the epoch order only, so a resumed run sees the same batches.
  const int64_t n = int64_t(order.size());
  for (int64_t j = 0; j < n; ++j) {
    const int64_t i = order[size_t((pos + j) % n)];
    bool known_bad = false;
    if (opt.on_bad_sample == BadSamplePolicy::skip) {
      std::lock_guard<std::mutex> lock(mu);
      known_bad = bad.count(i) > 0;
    }
    if (!known_bad) {
      try {
        read_sample(i, x, y, scratch);
        return i;
      } catch (const BadSampleError& e) {
        if (opt.on_bad_sample == BadSamplePolicy::error)
          throw IOError(str(e.what(), " (data.on_bad_sample=skip replaces bad samples instead)"));
        mark_bad(e);
      }
    }
    // Only the sample at `pos` is this batch's skip: a bad candidate after it is counted
    // where its own position comes up.
    if (j == 0) ++skipped;
  }
  throw IOError(str("rank ", rank, ": every one of the ", n, " samples of this rank's epoch is bad (",
                    ds->describe(order.front()), "...): nothing to replace them with"));
}

bool DataLoader::Impl::channels_last() const {
  if (ds->sample_shape().size() < 2) return false;
  return opt.memory_format ? *opt.memory_format == MemoryFormat::channels_last : ds->channels_stored_last();
}

void DataLoader::Impl::fill(Slot& s, int64_t b, ReadScratch& scratch, std::vector<float>& row) {
  const int64_t begin = b * opt.batch_size;
  const int64_t n = std::min<int64_t>(opt.batch_size, int64_t(order.size()) - begin);
  const bool rounded = opt.dtype == DType::bf16;
  if (rounded) row.resize(xn);
  auto* y = static_cast<unsigned char*>(s.y_full.raw_data());
  s.batch.samples.resize(size_t(n));
  s.batch.skipped = 0;
  for (int64_t k = 0; k < n; ++k) {
    // A sample is one dense row of the batch in either memory format (N is outermost).
    float* x = rounded ? row.data() : s.x_full.data<float>() + size_t(k) * xn;
    s.batch.samples[size_t(k)] = read_good_sample(begin + k, x, y + size_t(k) * yb, scratch, s.batch.skipped);
    if (rounded) {
      bf16* dst = s.x_full.data<bf16>() + size_t(k) * xn;
      for (size_t i = 0; i < xn; ++i) dst[i] = bf16(x[i]);
    }
  }
  s.batch.size = n;
  s.batch.real = std::clamp<int64_t>(real - begin, 0, n);
  s.batch.index = b;
  s.batch.source = ds.get();
  s.batch.x = n == opt.batch_size ? s.x_full : s.x_full.slice(0, n);
  s.batch.y = n == opt.batch_size ? s.y_full : s.y_full.slice(0, n);
}

void DataLoader::Impl::worker() {
  ReadScratch scratch;
  std::vector<float> row;
  const int64_t nslots = int64_t(slots.size());
  while (true) {
    int64_t b;
    {
      std::unique_lock<std::mutex> lock(mu);
      if (stop || next_to_fill >= nbatches) return;
      b = next_to_fill++;
      // batch b reuses the slot of batch b - nslots, which the consumer must have released
      cv.wait(lock, [&] { return stop || b < released + nslots; });
      if (stop) return;
    }
    Slot& s = slots[size_t(b % nslots)];
    Stopwatch sw;
    std::exception_ptr err;
    try {
      fill(s, b, scratch, row);
    } catch (const std::exception& e) {
      err = std::make_exception_ptr(IOError(str("rank ", rank, ": ", e.what())));
    }
    double t = sw.seconds();
    {
      std::lock_guard<std::mutex> lock(mu);
      s.error = err;
      s.filled = b;
      epoch.read_seconds += t;
      if (!err) epoch.bytes += double(s.batch.size) * double(bytes);
    }
    cv.notify_all();
  }
}

void DataLoader::start_epoch(int64_t e) {
  auto& I = *impl_;
  I.stop_workers();
  if (I.started) add(I.total, I.epoch);
  I.epoch = LoaderStats{};
  I.stage();  // no-op unless staging is asked for and not yet done
  I.order = I.sampler.shard(e);
  I.real = I.sampler.real_size();
  I.nbatches = batches_per_epoch();
  for (auto& s : I.slots) {
    s.filled = -1;
    s.error = nullptr;
  }
  I.next_to_fill = I.consumed = I.released = 0;
  I.stop = false;
  I.started = true;
  int nt = int(std::min<int64_t>(I.opt.io_threads, std::max<int64_t>(I.nbatches, 1)));
  for (int t = 0; t < nt; ++t) I.threads.emplace_back([&I] { I.worker(); });
}

const Batch* DataLoader::next() {
  auto& I = *impl_;
  HALO_CHECK(I.started, "DataLoader::next: call start_epoch(epoch) first");
  std::unique_lock<std::mutex> lock(I.mu);
  I.released = I.consumed;  // the batch handed out last time may now be refilled
  I.cv.notify_all();
  if (I.consumed >= I.nbatches) return nullptr;
  const int64_t b = I.consumed;
  Impl::Slot& s = I.slots[size_t(b % int64_t(I.slots.size()))];
  if (s.filled != b) {
    Stopwatch sw;
    I.cv.wait(lock, [&] { return s.filled == b; });
    I.epoch.wait_seconds += sw.seconds();
  }
  ++I.consumed;
  if (s.error) std::rethrow_exception(s.error);
  I.epoch.samples += s.batch.size;
  I.epoch.batches += 1;
  I.epoch.skipped_samples += s.batch.skipped;
  return &s.batch;
}

LoaderStats DataLoader::epoch_stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->epoch;
}

LoaderStats DataLoader::total_stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  LoaderStats t = impl_->total;
  add(t, impl_->epoch);
  return t;
}

}  // namespace halo::data
