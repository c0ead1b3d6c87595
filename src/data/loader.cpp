#include "halo/data/loader.hpp"

#include "halo/cuda/runtime.hpp"

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "halo/data/packed.hpp"
#include "halo/util/error.hpp"
#include "halo/util/log.hpp"
#include "halo/util/timer.hpp"

namespace halo::data {

namespace {
std::pair<int, int> rank_size(MPI_Comm comm) {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  if (!init || fin) return {0, 1};
  int r = 0, s = 1;
  MPI_Comm_rank(comm, &r);
  MPI_Comm_size(comm, &s);
  return {r, s};
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

DataLoader::DataLoader(std::shared_ptr<const H5Dataset> dataset, LoaderOptions opt)
    : ds_(std::move(dataset)),
      opt_(std::move(opt)),
      rank_(rank_size(opt_.comm).first),
      size_(rank_size(opt_.comm).second),
      sampler_(ds_ ? ds_->size() : 0, rank_, size_, effective(opt_.shard, opt_)) {
  HALO_CHECK_T(ConfigError, ds_ != nullptr, "DataLoader: no dataset");
  HALO_CHECK_T(ConfigError, opt_.batch_size >= 1, "DataLoader: batch_size must be >= 1, got ", opt_.batch_size);
  HALO_CHECK_T(ConfigError, opt_.prefetch >= 1, "DataLoader: prefetch must be >= 1, got ", opt_.prefetch);
  HALO_CHECK_T(ConfigError, opt_.io_threads >= 1, "DataLoader: io_threads must be >= 1, got ", opt_.io_threads);
  HALO_CHECK_T(ConfigError, opt_.staging != Staging::directory || !opt_.stage_dir.empty(),
               "DataLoader: directory staging needs stage_dir (a node-local path)");
  Shape xs{opt_.batch_size}, ys{opt_.batch_size};
  for (auto d : ds_->sample_shape()) xs.push_back(d);
  for (auto d : ds_->label_shape()) ys.push_back(d);
  slots_.resize(size_t(opt_.prefetch + 1));
  const MemoryFormat fmt = channels_last() ? MemoryFormat::channels_last : MemoryFormat::contiguous;
  const bool pin = opt_.pin_memory && cuda::available();
  for (auto& s : slots_) {
    // touched once here so steady-state batches never page-fault
#if HALO_ENABLE_CUDA
    if (pin) {
      s.x_full = cuda::pinned_empty(xs, DType::f32, fmt);
      s.x_full.zero_();
      s.y_full = cuda::pinned_empty(ys, ds_->label_dtype());
      s.y_full.zero_();
      continue;
    }
#endif
    (void)pin;
    s.x_full = Tensor::zeros(xs, DType::f32, Device::cpu(), fmt);
    s.y_full = Tensor::zeros(ys, ds_->label_dtype());
  }
}

DataLoader::~DataLoader() { stop_workers(); }

int64_t DataLoader::batches_per_epoch() const { return sampler_.batches(); }

std::string DataLoader::describe_epoch() const {
  const int64_t per_rank = sampler_.shard_size(), nb = sampler_.batches();
  std::string s = str(per_rank, " samples per rank in ", nb, nb == 1 ? " batch" : " batches");
  if (sampler_.padded() > 0)
    s += str(", ", sampler_.padded(), sampler_.padded() == 1 ? " sample" : " samples",
             " repeated to even out the ranks");
  if (sampler_.dropped() > 0) s += str(", ", sampler_.dropped(), " skipped per epoch (drop_last_batch)");
  return s;
}

void DataLoader::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void DataLoader::stage() {
  if (staged_ || opt_.staging == Staging::none) return;
  Stopwatch sw;
  std::vector<int64_t> mine = sampler_.shard(0);  // local-shuffle mode: the same set every epoch
  stage_row_.assign(size_t(ds_->size()), -1);
  const int64_t xn = numel(ds_->sample_shape());
  const size_t yb = ds_->label_bytes();
  ReadScratch scratch;
  std::vector<float> x(static_cast<size_t>(xn));
  std::vector<unsigned char> y(yb);
  std::unique_ptr<PackedWriter> writer;
  std::string path;
  if (opt_.staging == Staging::memory) {
    stage_x_.resize(mine.size() * size_t(xn));
    stage_y_.resize(mine.size() * yb);
  } else {
    std::filesystem::create_directories(opt_.stage_dir);
    path = (std::filesystem::path(opt_.stage_dir) / str("halo-stage-rank", rank_, ".h5")).string();
    PackedDescription d;
    d.axes = "C";
    for (char a : ds_->layout().axes)
      if (a != 'C') d.axes += a;
    d.label_kind = ds_->layout().label_kind;
    d.source_format = ds_->layout().format;
    d.origin_files = ds_->files();
    writer = std::make_unique<PackedWriter>(path, int64_t(mine.size()), ds_->sample_shape(), RawType::f32,
                                            ds_->label_shape(), d);
  }
  for (size_t k = 0; k < mine.size(); ++k) {
    int64_t i = mine[k];
    float* xp = opt_.staging == Staging::memory ? stage_x_.data() + k * size_t(xn) : x.data();
    void* yp = opt_.staging == Staging::memory ? static_cast<void*>(stage_y_.data() + k * yb) : y.data();
    try {
      // memory staging keeps the delivered format (batches are then plain copies); the
      // packed staging file is channel-first, as its axes attribute says
      ds_->read(i, xp, yp, scratch, opt_.staging == Staging::memory && channels_last());
    } catch (const BadSampleError& e) {
      if (opt_.on_bad_sample == BadSamplePolicy::error)
        throw IOError(str("rank ", rank_, ": staging: ", e.what(), " (data.on_bad_sample=skip replaces bad samples instead)"));
      mark_bad(e);  // not staged: read_good_sample replaces it without a read
      continue;
    } catch (const Error& e) {
      throw IOError(str("rank ", rank_, ": staging: ", e.what()));
    }
    if (writer) {
      const SampleRef& r = ds_->ref(i);
      writer->write(int64_t(k), xp, yp, {r.file, r.index, r.origin[0], r.origin[1], r.origin[2]});
    }
    stage_row_[size_t(i)] = int64_t(k);
    total_.bytes += double(ds_->stored_bytes() + yb);
  }
  if (writer) {
    writer->close();
    ds_->close_files();
    stage_ds_ = std::make_shared<H5Dataset>(std::vector<std::string>{path}, detect_layout(path), Driver::posix);
  }
  staged_ = true;
  total_.stage_seconds += sw.seconds();
}

void DataLoader::read_sample(int64_t i, float* x, void* y, ReadScratch& scratch) {
  if (staged_) {
    int64_t row = stage_row_.at(size_t(i));
    HALO_CHECK(row >= 0, "rank ", rank_, ": sample ", i, " was not staged on this rank");
    if (stage_ds_) {
      stage_ds_->read(row, x, y, scratch, channels_last());
    } else {
      const size_t xn = size_t(numel(ds_->sample_shape())), yb = ds_->label_bytes();
      std::memcpy(x, stage_x_.data() + size_t(row) * xn, xn * sizeof(float));
      std::memcpy(y, stage_y_.data() + size_t(row) * yb, yb);
    }
    return;
  }
  ds_->read(i, x, y, scratch, channels_last());
}

void DataLoader::mark_bad(const BadSampleError& e) {
  bool first = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    first = bad_.insert(e.sample()).second;
  }
  if (first) log::warn("rank ", rank_, ": skipping bad sample (data.on_bad_sample=skip): ", e.what());
}

int64_t DataLoader::read_good_sample(int64_t pos, float* x, void* y, ReadScratch& scratch, int64_t& skipped) {
  // Replacing (rather than dropping) a bad sample keeps the batch full and the number of
  // batches of every rank unchanged, so the ranks' steps and allreduces stay matched; the
  // replacement is a function of the epoch order only, so a resumed run sees the same batches.
  const int64_t n = int64_t(order_.size());
  for (int64_t j = 0; j < n; ++j) {
    const int64_t i = order_[size_t((pos + j) % n)];
    bool known_bad = false;
    if (opt_.on_bad_sample == BadSamplePolicy::skip) {
      std::lock_guard<std::mutex> lock(mu_);
      known_bad = bad_.count(i) > 0;
    }
    if (!known_bad) {
      try {
        read_sample(i, x, y, scratch);
        return i;
      } catch (const BadSampleError& e) {
        if (opt_.on_bad_sample == BadSamplePolicy::error)
          throw IOError(str(e.what(), " (data.on_bad_sample=skip replaces bad samples instead)"));
        mark_bad(e);
      }
    }
    // Only the sample at `pos` is this batch's skip: a bad candidate after it is counted
    // where its own position comes up.
    if (j == 0) ++skipped;
  }
  throw IOError(str("rank ", rank_, ": every one of the ", n, " samples of this rank's epoch is bad (",
                    ds_->files().front(), "...): nothing to replace them with"));
}

bool DataLoader::channels_last() const {
  if (ds_->sample_shape().size() < 2) return false;
  return opt_.memory_format ? *opt_.memory_format == MemoryFormat::channels_last : ds_->channels_stored_last();
}

void DataLoader::fill(Slot& s, int64_t b, ReadScratch& scratch) {
  const int64_t begin = b * opt_.batch_size;
  const int64_t n = std::min<int64_t>(opt_.batch_size, int64_t(order_.size()) - begin);
  const size_t xn = size_t(numel(ds_->sample_shape())), yb = ds_->label_bytes();
  float* x = s.x_full.data<float>();
  auto* y = static_cast<unsigned char*>(s.y_full.raw_data());
  s.batch.samples.resize(size_t(n));
  s.batch.skipped = 0;
  for (int64_t k = 0; k < n; ++k)
    s.batch.samples[size_t(k)] =
        read_good_sample(begin + k, x + size_t(k) * xn, y + size_t(k) * yb, scratch, s.batch.skipped);
  s.batch.size = n;
  s.batch.real = std::clamp<int64_t>(real_ - begin, 0, n);
  s.batch.index = b;
  s.batch.x = n == opt_.batch_size ? s.x_full : s.x_full.slice(0, n);
  s.batch.y = n == opt_.batch_size ? s.y_full : s.y_full.slice(0, n);
}

void DataLoader::worker() {
  ReadScratch scratch;
  const int64_t nslots = int64_t(slots_.size());
  while (true) {
    int64_t b;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (stop_ || next_to_fill_ >= nbatches_) return;
      b = next_to_fill_++;
      // batch b reuses the slot of batch b - nslots, which the consumer must have released
      cv_.wait(lock, [&] { return stop_ || b < released_ + nslots; });
      if (stop_) return;
    }
    Slot& s = slots_[size_t(b % nslots)];
    Stopwatch sw;
    std::exception_ptr err;
    try {
      fill(s, b, scratch);
    } catch (const std::exception& e) {
      err = std::make_exception_ptr(IOError(str("rank ", rank_, ": ", e.what())));
    }
    double t = sw.seconds();
    {
      std::lock_guard<std::mutex> lock(mu_);
      s.error = err;
      s.filled = b;
      epoch_.read_seconds += t;
      if (!err) epoch_.bytes += double(s.batch.size) * double(ds_->stored_bytes() + ds_->label_bytes());
    }
    cv_.notify_all();
  }
}

void DataLoader::start_epoch(int64_t epoch) {
  stop_workers();
  if (started_) add(total_, epoch_);
  epoch_ = LoaderStats{};
  stage();  // no-op unless staging is asked for and not yet done
  order_ = sampler_.shard(epoch);
  real_ = sampler_.real_size();
  nbatches_ = batches_per_epoch();
  for (auto& s : slots_) {
    s.filled = -1;
    s.error = nullptr;
  }
  next_to_fill_ = consumed_ = released_ = 0;
  stop_ = false;
  started_ = true;
  int nt = int(std::min<int64_t>(opt_.io_threads, std::max<int64_t>(nbatches_, 1)));
  for (int t = 0; t < nt; ++t) threads_.emplace_back([this] { worker(); });
}

const Batch* DataLoader::next() {
  HALO_CHECK(started_, "DataLoader::next: call start_epoch(epoch) first");
  std::unique_lock<std::mutex> lock(mu_);
  released_ = consumed_;  // the batch handed out last time may now be refilled
  cv_.notify_all();
  if (consumed_ >= nbatches_) return nullptr;
  const int64_t b = consumed_;
  Slot& s = slots_[size_t(b % int64_t(slots_.size()))];
  if (s.filled != b) {
    Stopwatch sw;
    cv_.wait(lock, [&] { return s.filled == b; });
    epoch_.wait_seconds += sw.seconds();
  }
  ++consumed_;
  if (s.error) std::rethrow_exception(s.error);
  epoch_.samples += s.batch.size;
  epoch_.batches += 1;
  epoch_.skipped_samples += s.batch.skipped;
  return &s.batch;
}

LoaderStats DataLoader::epoch_stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return epoch_;
}

LoaderStats DataLoader::total_stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  LoaderStats t = total_;
  add(t, epoch_);
  return t;
}

}  // namespace halo::data
