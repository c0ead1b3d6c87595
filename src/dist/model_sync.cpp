#include "halo/dist/model_sync.hpp"

#include <algorithm>
#include <climits>
#include <cstring>

#include "halo/nn/model.hpp"
#include "halo/util/error.hpp"

namespace halo::dist {
namespace {

uint64_t fnv1a(const std::string& s, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

uint64_t signature_hash(const TensorSignature& s) { return fnv1a(s.str()); }

std::string broadcast_string(const Communicator& comm, const std::string& s, int root) {
  char buf[512] = {};
  if (comm.rank() == root) std::strncpy(buf, s.c_str(), sizeof buf - 1);
  Watchdog::Guard g(comm.watchdog(), "model check: broadcast of a description");
  MPI_Bcast(buf, int(sizeof buf), MPI_CHAR, root, comm.comm());
  return buf;
}

}  // namespace

std::string TensorSignature::str() const { return "'" + name + "' " + halo::name(dtype) + to_string(shape); }

void check_same_signatures(const Communicator& comm, const std::vector<TensorSignature>& local,
                           const std::string& what) {
  // 1. The number of entries: min and max in one call (max as -min of the negation).
  int64_t counts[2] = {int64_t(local.size()), -int64_t(local.size())};
  {
    Watchdog::Guard g(comm.watchdog(), what + " check: entry counts");
    MPI_Allreduce(MPI_IN_PLACE, counts, 2, MPI_INT64_T, MPI_MIN, comm.comm());
  }
  const int64_t nmin = counts[0], nmax = -counts[1];
  // 2. Hashes of the common prefix: min and max (as min of the complement) in one call.
  std::vector<uint64_t> h(size_t(2 * nmin));
  for (int64_t i = 0; i < nmin; ++i) {
    h[size_t(i)] = signature_hash(local[size_t(i)]);
    h[size_t(nmin + i)] = ~h[size_t(i)];
  }
  if (nmin > 0) {
    Watchdog::Guard g(comm.watchdog(), what + " check: signatures");
    MPI_Allreduce(MPI_IN_PLACE, h.data(), int(2 * nmin), MPI_UINT64_T, MPI_MIN, comm.comm());
  }
  int64_t first = -1;
  for (int64_t i = 0; i < nmin && first < 0; ++i)
    if (h[size_t(i)] != ~h[size_t(nmin + i)]) first = i;
  if (first < 0 && nmin != nmax) first = nmin;
  if (first < 0) return;  // every rank agrees (and every rank knows it)

  // 3. Two ranks that disagree at `first`: the lowest holding the smallest and the lowest
  //    holding the largest value there.
  int me = comm.rank();
  int who[2] = {INT_MAX, INT_MAX};
  if (first < nmin) {
    uint64_t mine = signature_hash(local[size_t(first)]);
    if (mine == h[size_t(first)]) who[0] = me;
    if (mine == ~h[size_t(nmin + first)]) who[1] = me;
  } else {
    if (int64_t(local.size()) == nmin) who[0] = me;
    if (int64_t(local.size()) == nmax) who[1] = me;
  }
  {
    Watchdog::Guard g(comm.watchdog(), what + " check: locating the difference");
    MPI_Allreduce(MPI_IN_PLACE, who, 2, MPI_INT, MPI_MIN, comm.comm());
  }
  auto describe = [&] {
    if (first < int64_t(local.size())) return local[size_t(first)].str();
    return str("nothing (only ", local.size(), " entries)");
  };
  std::string a = broadcast_string(comm, describe(), who[0]);
  std::string b = broadcast_string(comm, describe(), who[1]);
  throw DistError(str(what, " differs between ranks at entry #", first, ": rank ", who[0], " has ", a, ", rank ",
                      who[1], " has ", b, ". Every rank must build the same model from the same configuration."));
}

std::vector<TensorSignature> model_signatures(nn::Model& model) {
  std::vector<TensorSignature> s;
  for (nn::Parameter* p : model.parameters()) s.push_back({p->name, p->value.shape(), p->value.dtype()});
  for (nn::Buffer* b : model.buffers()) s.push_back({"buffer " + b->name, b->value.shape(), b->value.dtype()});
  return s;
}

void check_same_model(const Communicator& comm, nn::Model& model) {
  check_same_signatures(comm, model_signatures(model), "model");
}

void broadcast_tensors(const Communicator& comm, const std::vector<Tensor*>& tensors, int root) {
  for (Tensor* t : tensors) {
    HALO_CHECK_T(DistError, t && t->defined() && t->is_dense(), "broadcast_tensors: tensor ",
                 t ? t->str() : "(null)", " must be a dense tensor");
    // A GPU tensor (a model moved to its device before the trainer broadcasts it) goes
    // through a host copy in its own layout: MPI moves host bytes here.
    Tensor host = t->device().is_cpu() ? *t : Tensor::empty_strided(t->shape(), t->strides(), t->dtype(), Device::cpu());
    if (!t->device().is_cpu()) host.copy_(*t);
    auto* p = static_cast<char*>(host.raw_data());
    size_t left = host.nbytes();
    Watchdog::Guard g(comm.watchdog(), "broadcast of " + t->str());
    while (left > 0) {
      int n = int(std::min(left, size_t(INT_MAX)));
      MPI_Bcast(p, n, MPI_BYTE, root, comm.comm());
      p += n;
      left -= size_t(n);
    }
    if (!t->device().is_cpu()) t->copy_(host);
  }
}

void broadcast_model(const Communicator& comm, nn::Model& model) {
  check_same_model(comm, model);
  std::vector<Tensor*> ts;
  for (nn::Parameter* p : model.parameters()) ts.push_back(&p->value);
  for (nn::Buffer* b : model.buffers()) ts.push_back(&b->value);
  broadcast_tensors(comm, ts, 0);
}

}  // namespace halo::dist
