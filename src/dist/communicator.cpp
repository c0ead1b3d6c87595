#include "halo/dist/communicator.hpp"

#include <chrono>
#include <climits>
#include <thread>

#include "halo/util/error.hpp"
#include "halo/util/log.hpp"

namespace halo::dist {
namespace {

bool mpi_finalized() {
  int f = 0;
  MPI_Finalized(&f);
  return f != 0;
}

void check_initialised(const char* who) {
  int init = 0;
  MPI_Initialized(&init);
  HALO_CHECK_T(DistError, init && !mpi_finalized(), who,
               ": MPI is not initialised; create a halo::dist::MpiSession first (or call MPI_Init_thread)");
}

}  // namespace

MpiSession::MpiSession(int* argc, char*** argv, int required) {
  int init = 0;
  MPI_Initialized(&init);
  if (init) return;  // the host application owns MPI
  int provided = 0;
  HALO_CHECK_T(DistError, MPI_Init_thread(argc, argv, required, &provided) == MPI_SUCCESS,
               "MpiSession: MPI_Init_thread failed");
  owns_ = true;
}

MpiSession::~MpiSession() {
  if (owns_ && !mpi_finalized()) MPI_Finalize();
}

int MpiSession::thread_level() const {
  int provided = MPI_THREAD_SINGLE;
  MPI_Query_thread(&provided);
  return provided;
}

struct Communicator::Impl {
  MPI_Comm comm = MPI_COMM_NULL;
  MPI_Comm watchdog_comm = MPI_COMM_NULL;
  int rank = 0, size = 1, local_rank = 0, local_size = 1, nodes = 1;
  int thread_level = MPI_THREAD_SINGLE;
  CommunicatorOptions options;
  std::unique_ptr<Watchdog> watchdog;

  ~Impl() {
    watchdog.reset();  // joins the thread before its communicator goes
    if (!mpi_finalized()) {
      if (comm != MPI_COMM_NULL) MPI_Comm_free(&comm);
      if (watchdog_comm != MPI_COMM_NULL) MPI_Comm_free(&watchdog_comm);
    }
  }
};

Communicator::Communicator(MPI_Comm comm, CommunicatorOptions options) : impl_(std::make_shared<Impl>()) {
  check_initialised("Communicator");
  HALO_CHECK_T(DistError, comm != MPI_COMM_NULL, "Communicator: MPI_COMM_NULL given");
  impl_->options = options;
  MPI_Comm_dup(comm, &impl_->comm);
  MPI_Comm_dup(comm, &impl_->watchdog_comm);
  MPI_Comm_rank(impl_->comm, &impl_->rank);
  MPI_Comm_size(impl_->comm, &impl_->size);
  MPI_Comm local;
  MPI_Comm_split_type(impl_->comm, MPI_COMM_TYPE_SHARED, impl_->rank, MPI_INFO_NULL, &local);
  MPI_Comm_rank(local, &impl_->local_rank);
  MPI_Comm_size(local, &impl_->local_size);
  MPI_Comm_free(&local);
  // Counted once here, with the node-local split, so asking is free later.
  int first_on_node = impl_->local_rank == 0 ? 1 : 0;
  MPI_Allreduce(&first_on_node, &impl_->nodes, 1, MPI_INT, MPI_SUM, impl_->comm);
  MPI_Query_thread(&impl_->thread_level);
  int same = MPI_UNEQUAL;
  MPI_Comm_compare(comm, MPI_COMM_WORLD, &same);
  if (same == MPI_IDENT || same == MPI_CONGRUENT) log::set_rank(impl_->rank, impl_->size);
  impl_->watchdog = std::make_unique<Watchdog>(impl_->watchdog_comm, impl_->thread_level >= MPI_THREAD_MULTIPLE,
                                               options.stall_timeout_s, options.watchdog_poll_s);
}

int Communicator::rank() const { return impl_->rank; }
int Communicator::size() const { return impl_->size; }
int Communicator::local_rank() const { return impl_->local_rank; }
int Communicator::local_size() const { return impl_->local_size; }
int Communicator::node_count() const { return impl_->nodes; }
MPI_Comm Communicator::comm() const { return impl_->comm; }
int Communicator::thread_level() const { return impl_->thread_level; }
Watchdog& Communicator::watchdog() const { return *impl_->watchdog; }
void Communicator::set_stall_timeout(double seconds) const { impl_->watchdog->set_timeout(seconds); }

Communicator Communicator::split(int color, int key) const {
  MPI_Comm sub;
  {
    Watchdog::Guard g(watchdog(), "MPI_Comm_split");
    MPI_Comm_split(impl_->comm, color, key, &sub);
  }
  CommunicatorOptions opts = impl_->options;
  opts.stall_timeout_s = watchdog().timeout();
  Communicator c(sub, opts);
  MPI_Comm_free(&sub);
  return c;
}

void Communicator::barrier(const std::string& what) const {
  Watchdog::Guard g(watchdog(), what);
  MPI_Barrier(impl_->comm);
}

void Communicator::idle_barrier() const {
  MPI_Request req;
  MPI_Ibarrier(impl_->comm, &req);
  for (int done = 0;;) {
    MPI_Test(&req, &done, MPI_STATUS_IGNORE);
    if (done) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

void Communicator::allreduce_sum(double* values, size_t n, const std::string& what) const {
  HALO_CHECK_T(DistError, n <= size_t(INT_MAX), "allreduce_sum '", what, "': ", n, " values exceed one call");
  Watchdog::Guard g(watchdog(), what);
  MPI_Allreduce(MPI_IN_PLACE, values, int(n), MPI_DOUBLE, MPI_SUM, impl_->comm);
}

void Communicator::allreduce_sum(int64_t* values, size_t n, const std::string& what) const {
  HALO_CHECK_T(DistError, n <= size_t(INT_MAX), "allreduce_sum '", what, "': ", n, " values exceed one call");
  Watchdog::Guard g(watchdog(), what);
  MPI_Allreduce(MPI_IN_PLACE, values, int(n), MPI_INT64_T, MPI_SUM, impl_->comm);
}

}  // namespace halo::dist
