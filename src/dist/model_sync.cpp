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

namespace {

// Small tensors are broadcast in packs: one MPI_Bcast per pack instead of one per tensor. A
// model's BatchNorm buffers (some 150 small tensors in DeepCAM) go before every validation and
// checkpoint, and each broadcast pays the collective's latency, which grows with the rank
// count. A tensor of kAloneBytes or more goes alone, from its own memory: its broadcast is
// bandwidth-bound, and copying it into and out of a pack would cost more than a latency
// (broadcasting all of DeepCAM's parameters through packs took twice as long).
constexpr size_t kAloneBytes = size_t(256) << 10;
constexpr size_t kPackBytes = size_t(4) << 20;

void broadcast_bytes(const Communicator& comm, char* p, size_t bytes, int root, const std::string& what) {
  Watchdog::Guard g(comm.watchdog(), what);
  while (bytes > 0) {
    int n = int(std::min(bytes, size_t(INT_MAX)));
    MPI_Bcast(p, n, MPI_BYTE, root, comm.comm());
    p += n;
    bytes -= size_t(n);
  }
}

// The tensor's bytes on the host in its own layout (MPI moves host bytes): the tensor itself
// on the CPU, else a host copy (a model moved to its GPU before the trainer broadcasts it).
Tensor host_view(const Tensor& t, bool fill) {
  if (t.device().is_cpu()) return t;
  Tensor host = Tensor::empty_strided(t.shape(), t.strides(), t.dtype(), Device::cpu());
  if (fill) host.copy_(t);
  return host;
}

}  // namespace

void broadcast_tensors(const Communicator& comm, const std::vector<Tensor*>& tensors, int root) {
  for (Tensor* t : tensors)
    HALO_CHECK_T(DistError, t && t->defined() && t->is_dense(), "broadcast_tensors: tensor ",
                 t ? t->str() : "(null)", " must be a dense tensor");
  const bool sender = comm.rank() == root;
  std::vector<char> pack;
  for (size_t i = 0; i < tensors.size();) {
    const Tensor& first = *tensors[i];
    if (first.nbytes() >= kAloneBytes) {  // alone, from (and into) its own host bytes
      Tensor host = host_view(first, sender);
      broadcast_bytes(comm, static_cast<char*>(host.raw_data()), host.nbytes(), root, "broadcast of " + first.str());
      if (!sender && !first.device().is_cpu()) tensors[i]->copy_(host);
      ++i;
      continue;
    }
    size_t end = i, bytes = 0;
    while (end < tensors.size() && tensors[end]->nbytes() < kAloneBytes && bytes + tensors[end]->nbytes() <= kPackBytes)
      bytes += tensors[end++]->nbytes();
    pack.resize(bytes);
    if (sender) {
      size_t at = 0;
      for (size_t k = i; k < end; ++k) {
        if (tensors[k]->nbytes() == 0) continue;
        Tensor host = host_view(*tensors[k], true);
        std::memcpy(pack.data() + at, host.raw_data(), host.nbytes());
        at += host.nbytes();
      }
    }
    broadcast_bytes(comm, pack.data(), bytes, root,
                    str("broadcast of ", end - i, " tensor(s) from ", first.str()));
    if (!sender) {
      size_t at = 0;
      for (size_t k = i; k < end; ++k) {
        Tensor& t = *tensors[k];
        if (t.nbytes() == 0) continue;
        Tensor host = host_view(t, false);
        std::memcpy(host.raw_data(), pack.data() + at, host.nbytes());
        if (!t.device().is_cpu()) t.copy_(host);
        at += host.nbytes();
      }
    }
    i = end;
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
