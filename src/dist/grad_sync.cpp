#include "halo/dist/grad_sync.hpp"

#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "nccl/grad_sync_device.hpp"
#include "halo/dist/nccl.hpp"
#include "halo/nn/model.hpp"
#include "halo/util/error.hpp"
#include "halo/util/timer.hpp"

namespace halo::dist {
namespace {

// Sums bf16 values bit pattern by bit pattern: MPI has no bf16 type, so the wire type is
// MPI_UINT16_T with this operator.
void bf16_sum(void* in, void* inout, int* len, MPI_Datatype*) {
  const auto* a = static_cast<const uint16_t*>(in);
  auto* b = static_cast<uint16_t*>(inout);
  for (int i = 0; i < *len; ++i) {
    halo::bf16 x, y;
    x.bits = a[i];
    y.bits = b[i];
    b[i] = halo::bf16(float(x) + float(y)).bits;
  }
}

MPI_Datatype mpi_type(DType t) {
  switch (t) {
    case DType::f32: return MPI_FLOAT;
    case DType::f64: return MPI_DOUBLE;
    default: return MPI_DATATYPE_NULL;
  }
}

std::string megabytes(size_t bytes) { return str(double(bytes) / 1e6, " MB"); }

struct Bucket {
  int index = 0;
  std::vector<int> params;          // indices into params_, packing order
  std::vector<size_t> offsets;      // element offset of each parameter
  size_t elements = 0;
  DType dtype = DType::f32;
  bool compressed = false;
  std::vector<unsigned char> wire;  // the allreduce buffer (touched once, reused)
  int pending = 0;                  // parameters not yet ready in this pass
  bool ready = false;
  MPI_Request request = MPI_REQUEST_NULL;
  int64_t seq = 0;                  // watchdog sequence number while in flight
  BucketTimes times;
};

}  // namespace

// Everything the synchroniser needs to run; see grad_sync.hpp for the protocol.
struct GradientSynchronizer::Impl {
  Impl(Communicator comm, std::vector<nn::Parameter*> params, GradSyncOptions options);
  ~Impl();

  void attach(nn::Model& model);
  void detach();
  void mark_ready(const std::vector<nn::Parameter*>& ready);
  bool wait();
  bool communicates_now() const;
  std::vector<BucketTimes> last_times() const;
  uint64_t layout_hash() const;

  bool progress_step();
  void progress_loop();
  void post(Bucket& b);
  void finish(Bucket& b);
  void reset_pass_locked();
  void launch_device(int limit);
  bool wait_device(std::unique_lock<std::mutex>& lock);

  Communicator comm_;
  GradSyncOptions opt_;
  std::vector<nn::Parameter*> params_;
  std::vector<BucketInfo> infos_;
  std::vector<std::unique_ptr<Bucket>> buckets_;
  std::unordered_map<const nn::Parameter*, int> index_of_;  // parameter -> index in params_
  std::vector<int> bucket_of_;                               // per parameter
  std::vector<char> marked_;                                 // per parameter, this pass

  // Shared between the caller of mark_ready/wait and the progress thread.
  mutable std::mutex mu_;
  std::condition_variable cv_;       // wakes the progress thread
  std::condition_variable done_cv_;  // wakes wait()
  int launch_limit_ = 0;   // buckets [0, launch_limit_) may be posted (all ready, in order)
  int completed_ = 0;
  int64_t micro_ = 0;      // backward passes finished (wait() calls)
  bool stop_ = false;
  std::atomic<bool> waiting_{false};  // the caller is blocked in wait()
  // Touched only by the thread that progresses MPI.
  int posted_ = 0;
  std::vector<int> in_flight_;

  bool use_thread_ = false;
  std::thread thread_;
  nn::Model* model_ = nullptr;
  int hook_id_ = -1;
  MPI_Op bf16_sum_ = MPI_OP_NULL;
  std::unique_ptr<detail::DeviceGradSync> dev_;  // device path (parameters on a GPU)
};

std::string BucketInfo::describe() const {
  std::string s = str("bucket ", index, " (", params.size(), " params, ", megabytes(bytes));
  if (!params.empty()) s += str(": ", params.front(), params.size() > 1 ? " .. " + params.back() : "");
  return s + ")";
}

GradientSynchronizer::Impl::Impl(Communicator comm, std::vector<nn::Parameter*> params, GradSyncOptions options)
    : comm_(std::move(comm)), opt_(options), params_(std::move(params)) {
  HALO_CHECK_T(ConfigError, opt_.accumulation_steps >= 1, "GradSyncOptions::accumulation_steps must be >= 1, got ",
               opt_.accumulation_steps);
  HALO_CHECK_T(ConfigError, opt_.bucket_bytes > 0 && opt_.first_bucket_bytes > 0,
               "GradSyncOptions: bucket sizes must be positive");
  marked_.assign(params_.size(), 0);
  bucket_of_.assign(params_.size(), -1);

  // Buckets in reverse definition order: backward completes the last layers first.
  size_t cap = opt_.first_bucket_bytes;
  for (size_t k = params_.size(); k-- > 0;) {
    nn::Parameter* p = params_[k];
    HALO_CHECK_T(DistError, p && p->value.defined(), "GradientSynchronizer: parameter #", k, " is undefined");
    DType dt = p->value.dtype();
    HALO_CHECK_T(ShapeError, dt == DType::f32 || dt == DType::f64, "GradientSynchronizer: parameter '", p->name,
                 "' has dtype ", name(dt), "; gradients are reduced in f32 or f64");
    HALO_CHECK_T(DistError, !index_of_.count(p), "GradientSynchronizer: parameter '", p->name, "' listed twice");
    size_t bytes = size_t(p->value.numel()) * size_of(dt);
    bool fits = !buckets_.empty() && buckets_.back()->dtype == dt && infos_.back().bytes + bytes <= cap;
    if (!buckets_.empty() && !fits) cap = opt_.bucket_bytes;
    if (!fits) {
      buckets_.push_back(std::make_unique<Bucket>());
      buckets_.back()->dtype = dt;
      buckets_.back()->index = int(buckets_.size()) - 1;
      buckets_.back()->compressed = opt_.compress_bf16 && dt == DType::f32;
      infos_.emplace_back();
      infos_.back().index = int(infos_.size()) - 1;
    }
    Bucket& b = *buckets_.back();
    BucketInfo& info = infos_.back();
    b.params.push_back(int(k));
    b.offsets.push_back(b.elements);
    b.elements += size_t(p->value.numel());
    info.params.push_back(p->name);
    info.elements = b.elements;
    info.bytes += bytes;
    index_of_[p] = int(k);
    bucket_of_[k] = int(buckets_.size()) - 1;
  }
  // Where the parameters live decides the path: all on the CPU (MPI) or all on one GPU (NCCL).
  const Device where = params_.empty() ? Device::cpu() : params_.front()->value.device();
  for (const nn::Parameter* p : params_)
    HALO_CHECK_T(DistError, p->value.device() == where, "GradientSynchronizer: parameter '", p->name, "' is on ",
                 p->value.device().str(), " but '", params_.front()->name, "' on ", where.str(),
                 "; move the whole model to one device (Model::to) before building the synchroniser");
  for (auto& b : buckets_) {
    HALO_CHECK_T(DistError, b->elements <= size_t(INT_MAX), "GradientSynchronizer: a bucket of ", b->elements,
                 " elements exceeds one MPI call; split the parameter");
    if (!where.is_cuda()) b->wire.assign(b->elements * (b->compressed ? 2 : size_of(b->dtype)), 0);
    b->pending = int(b->params.size());
  }
  if (where.is_cuda()) {
    std::vector<detail::DeviceBucket> device_buckets;
    for (auto& b : buckets_) {
      detail::DeviceBucket d;
      for (int k : b->params) d.params.push_back(params_[size_t(k)]);
      d.offsets = b->offsets;
      d.elements = b->elements;
      d.dtype = b->dtype;
      d.compressed = b->compressed;
      d.what = "gradient allreduce " + infos_[size_t(b->index)].describe();
      device_buckets.push_back(std::move(d));
    }
    if (!opt_.nccl) opt_.nccl = std::make_shared<NcclCommunicator>(comm_, where.index);
    HALO_CHECK_T(DistError, opt_.nccl->device() == where.index, "GradientSynchronizer: the parameters are on ",
                 where.str(), " but GradSyncOptions::nccl runs on cuda:", opt_.nccl->device());
    dev_ = std::make_unique<detail::DeviceGradSync>(opt_.nccl, where.index, std::move(device_buckets));
  }
  if (opt_.compress_bf16) MPI_Op_create(&bf16_sum, 1, &bf16_sum_);

  // The device path needs no progress thread: NCCL progresses on the GPU.
  use_thread_ = !dev_ && opt_.progress_thread && comm_.thread_multiple();
  if (use_thread_) thread_ = std::thread([this] { progress_loop(); });
}

GradientSynchronizer::Impl::~Impl() {
  detach();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) {
    for (auto& b : buckets_)
      if (b->request != MPI_REQUEST_NULL) MPI_Wait(&b->request, MPI_STATUS_IGNORE);
    if (bf16_sum_ != MPI_OP_NULL) MPI_Op_free(&bf16_sum_);
  }
}

void GradientSynchronizer::Impl::attach(nn::Model& model) {
  detach();
  model_ = &model;
  hook_id_ = model.add_grad_ready_hook([this](const std::vector<nn::Parameter*>& ready) { mark_ready(ready); });
}

void GradientSynchronizer::Impl::detach() {
  if (model_) model_->remove_grad_ready_hook(hook_id_);
  model_ = nullptr;
  hook_id_ = -1;
}

bool GradientSynchronizer::Impl::communicates_now() const {
  std::lock_guard<std::mutex> lock(mu_);
  return micro_ % opt_.accumulation_steps == opt_.accumulation_steps - 1;
}

void GradientSynchronizer::Impl::mark_ready(const std::vector<nn::Parameter*>& ready) {
  int limit = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (micro_ % opt_.accumulation_steps != opt_.accumulation_steps - 1) return;  // accumulating only
    double now = now_seconds();
    for (nn::Parameter* p : ready) {
      auto it = index_of_.find(p);
      HALO_CHECK_T(DistError, it != index_of_.end(), "GradientSynchronizer::mark_ready: parameter '",
                   p ? p->name : "(null)", "' is not one this synchroniser was built with");
      size_t k = size_t(it->second);
      if (marked_[k]) continue;  // a layer announced twice (shared parameters)
      marked_[k] = 1;
      Bucket& b = *buckets_[size_t(bucket_of_[k])];
      if (--b.pending == 0) {
        b.ready = true;
        b.times.ready = now;
      }
    }
    while (launch_limit_ < int(buckets_.size()) && buckets_[size_t(launch_limit_)]->ready) ++launch_limit_;
    limit = launch_limit_;
  }
  if (dev_) launch_device(limit);  // NCCL calls are queued by the thread running backward
  else if (use_thread_) cv_.notify_one();
  else progress_step();
}

void GradientSynchronizer::Impl::post(Bucket& b) {
  // Pack the gradients (complete: backward announced them) into the wire buffer.
  if (b.compressed) {
    auto* w = reinterpret_cast<uint16_t*>(b.wire.data());
    for (size_t i = 0; i < b.params.size(); ++i) {
      const Tensor& g = params_[size_t(b.params[i])]->grad;
      const float* src = g.data<float>();
      uint16_t* dst = w + b.offsets[i];
      for (int64_t e = 0, n = g.numel(); e < n; ++e) dst[e] = halo::bf16(src[e]).bits;
    }
  } else {
    size_t es = size_of(b.dtype);
    for (size_t i = 0; i < b.params.size(); ++i) {
      const Tensor& g = params_[size_t(b.params[i])]->grad;
      std::memcpy(b.wire.data() + b.offsets[i] * es, g.raw_data(), g.nbytes());
    }
  }
  b.seq = comm_.watchdog().enter("gradient allreduce " + infos_[size_t(b.index)].describe());
  b.times.start = now_seconds();
  const MPI_Datatype type = b.compressed ? MPI_UINT16_T : mpi_type(b.dtype);
  const MPI_Op op = b.compressed ? bf16_sum_ : MPI_SUM;
  if (use_thread_) {
    // On the dedicated progress thread a blocking allreduce overlaps backward just as well,
    // and MPI's tuned blocking algorithms are 2-3x faster than its non-blocking schedule
    // for megabyte buckets (measured with halo-bench-allreduce, Open MPI 4.1). The null
    // request makes the completion test below succeed at once.
    MPI_Allreduce(MPI_IN_PLACE, b.wire.data(), int(b.elements), type, op, comm_.comm());
    b.request = MPI_REQUEST_NULL;
  } else {
    MPI_Iallreduce(MPI_IN_PLACE, b.wire.data(), int(b.elements), type, op, comm_.comm(), &b.request);
  }
}

void GradientSynchronizer::Impl::finish(Bucket& b) {
  comm_.watchdog().leave(b.seq);
  double scale = opt_.average ? 1.0 / (double(comm_.size()) * opt_.accumulation_steps) : 1.0;
  for (size_t i = 0; i < b.params.size(); ++i) {
    Tensor& g = params_[size_t(b.params[i])]->grad;
    int64_t n = g.numel();
    if (b.compressed) {
      const auto* src = reinterpret_cast<const uint16_t*>(b.wire.data()) + b.offsets[i];
      float* dst = g.data<float>();
      for (int64_t e = 0; e < n; ++e) {
        halo::bf16 v;
        v.bits = src[e];
        dst[e] = float(v) * float(scale);
      }
    } else if (b.dtype == DType::f32) {
      const float* src = reinterpret_cast<const float*>(b.wire.data()) + b.offsets[i];
      float* dst = g.data<float>();
      for (int64_t e = 0; e < n; ++e) dst[e] = src[e] * float(scale);
    } else {
      const double* src = reinterpret_cast<const double*>(b.wire.data()) + b.offsets[i];
      double* dst = g.data<double>();
      for (int64_t e = 0; e < n; ++e) dst[e] = src[e] * scale;
    }
  }
  b.times.end = now_seconds();
}

// Posts every bucket that may go, then tests those in flight. Runs on exactly one thread
// (the progress thread, or the caller when there is none). Returns whether anything moved.
bool GradientSynchronizer::Impl::progress_step() {
  int limit;
  {
    std::lock_guard<std::mutex> lock(mu_);
    limit = launch_limit_;
  }
  bool moved = false;
  while (posted_ < limit) {
    post(*buckets_[size_t(posted_)]);
    in_flight_.push_back(posted_++);
    moved = true;
  }
  for (size_t i = 0; i < in_flight_.size();) {
    Bucket& b = *buckets_[size_t(in_flight_[i])];
    int done = 0;
    MPI_Test(&b.request, &done, MPI_STATUS_IGNORE);
    if (!done) {
      ++i;
      continue;
    }
    finish(b);
    in_flight_.erase(in_flight_.begin() + long(i));
    moved = true;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++completed_;
    }
    done_cv_.notify_all();
  }
  return moved;
}

void GradientSynchronizer::Impl::progress_loop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || launch_limit_ > posted_ || !in_flight_.empty(); });
      if (stop_ && in_flight_.empty()) return;
    }
    if (!progress_step() && !in_flight_.empty()) {
      // While the caller blocks in wait() its core is free: poll without sleeping then.
      if (opt_.poll_interval_us > 0 && !waiting_.load())
        std::this_thread::sleep_for(std::chrono::duration<double, std::micro>(opt_.poll_interval_us));
      else
        std::this_thread::yield();
    }
  }
}

void GradientSynchronizer::Impl::reset_pass_locked() {
  for (auto& b : buckets_) {
    b->pending = int(b->params.size());
    b->ready = false;
  }
  std::fill(marked_.begin(), marked_.end(), 0);
  launch_limit_ = 0;
  completed_ = 0;
}

bool GradientSynchronizer::Impl::wait() {
  std::unique_lock<std::mutex> lock(mu_);
  bool communicating = micro_ % opt_.accumulation_steps == opt_.accumulation_steps - 1;
  if (!communicating) {
    ++micro_;
    return false;
  }
  // Parameters that received no gradient in this pass (unused branches) still take part:
  // every rank must post every bucket.
  double now = now_seconds();
  for (auto& b : buckets_)
    if (!b->ready) {
      b->ready = true;
      b->times.ready = now;
    }
  launch_limit_ = int(buckets_.size());
  int total = int(buckets_.size());
  if (dev_) return wait_device(lock);
  if (use_thread_) {
    waiting_.store(true);
    cv_.notify_one();
    done_cv_.wait(lock, [&] { return completed_ == total; });
    waiting_.store(false);
  } else {
    lock.unlock();
    while (true) {
      progress_step();
      lock.lock();
      bool all = completed_ == total;
      lock.unlock();
      if (all) break;
      std::this_thread::yield();
    }
    lock.lock();
  }
  // The progress thread has nothing in flight now; posted_ belongs to it but is idle.
  posted_ = 0;
  reset_pass_locked();
  ++micro_;
  return true;
}

// Device path: queues buckets [posted_, limit) on the communication stream, in order (every
// rank issues the same NCCL calls in the same order). Runs on the thread running backward,
// whose current stream is the one the gradients were computed on.
void GradientSynchronizer::Impl::launch_device(int limit) {
  const double scale = opt_.average ? 1.0 / (double(comm_.size()) * opt_.accumulation_steps) : 1.0;
  while (posted_ < limit) {
    Bucket& b = *buckets_[size_t(posted_)];
    b.times.start = now_seconds();
    dev_->launch(posted_, scale);
    ++posted_;
  }
}

bool GradientSynchronizer::Impl::wait_device(std::unique_lock<std::mutex>& lock) {
  const int total = int(buckets_.size());
  lock.unlock();
  launch_device(total);
  dev_->finish(total, [&](int b) { buckets_[size_t(b)]->times.end = now_seconds(); });
  lock.lock();
  completed_ = total;
  posted_ = 0;
  reset_pass_locked();
  ++micro_;
  return true;
}

std::vector<BucketTimes> GradientSynchronizer::Impl::last_times() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<BucketTimes> t;
  for (auto& b : buckets_) t.push_back(b->times);
  return t;
}

uint64_t GradientSynchronizer::Impl::layout_hash() const {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](const void* p, size_t n) {
    const auto* c = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n; ++i) h = (h ^ c[i]) * 1099511628211ull;
  };
  for (size_t i = 0; i < buckets_.size(); ++i) {
    mix(&i, sizeof i);
    for (const std::string& n : infos_[i].params) mix(n.data(), n.size() + 1);
    mix(&buckets_[i]->elements, sizeof(size_t));
    int dt = int(buckets_[i]->dtype);
    mix(&dt, sizeof dt);
  }
  return h;
}

// The public class forwards: one indirection per call, none per element.
GradientSynchronizer::GradientSynchronizer(Communicator comm, std::vector<nn::Parameter*> params,
                                           GradSyncOptions options)
    : impl_(std::make_unique<Impl>(std::move(comm), std::move(params), std::move(options))) {}
GradientSynchronizer::~GradientSynchronizer() = default;
void GradientSynchronizer::attach(nn::Model& model) { impl_->attach(model); }
void GradientSynchronizer::detach() { impl_->detach(); }
void GradientSynchronizer::mark_ready(const std::vector<nn::Parameter*>& params) { impl_->mark_ready(params); }
bool GradientSynchronizer::wait() { return impl_->wait(); }
bool GradientSynchronizer::communicates_now() const { return impl_->communicates_now(); }
const std::vector<BucketInfo>& GradientSynchronizer::buckets() const { return impl_->infos_; }
std::vector<BucketTimes> GradientSynchronizer::last_times() const { return impl_->last_times(); }
uint64_t GradientSynchronizer::layout_hash() const { return impl_->layout_hash(); }
bool GradientSynchronizer::uses_progress_thread() const { return impl_->use_thread_; }
bool GradientSynchronizer::on_device() const { return impl_->dev_ != nullptr; }
void GradientSynchronizer::watch_current_stream(const std::string& what) {
  if (impl_->dev_) impl_->dev_->watch_current_stream(what);
}
const Communicator& GradientSynchronizer::communicator() const { return impl_->comm_; }

}  // namespace halo::dist
