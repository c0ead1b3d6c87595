// A checkpoint as one byte string and back, so that rank 0 reads the file once and the other
// ranks receive what it read (dist::read_on_root) instead of each opening the same file.
// Layout, all integers little-endian int64: for each of tensors, integers, reals, strings a
// count, then per entry the name (length + bytes) and the value: a tensor as dtype, rank,
// dims and its dense bytes; an integer or real as 8 bytes; a string as length + bytes.
#include <cstring>

#include "halo/train/checkpoint.hpp"
#include "halo/util/error.hpp"

namespace halo::train {

namespace {

struct Writer {
  std::string out;
  void raw(const void* p, size_t n) { out.append(static_cast<const char*>(p), n); }
  void i64(int64_t v) { raw(&v, sizeof v); }
  void str(const std::string& s) {
    i64(int64_t(s.size()));
    raw(s.data(), s.size());
  }
};

struct Reader {
  const std::string& in;
  size_t at = 0;
  const char* take(size_t n) {
    HALO_CHECK_T(IOError, n <= in.size() - at, "decode_checkpoint: the data end after ", at, " of ", in.size(),
                 " bytes, inside an entry (a truncated broadcast)");
    const char* p = in.data() + at;
    at += n;
    return p;
  }
  int64_t i64() {
    int64_t v;
    std::memcpy(&v, take(sizeof v), sizeof v);
    return v;
  }
  size_t count() {
    const int64_t n = i64();
    HALO_CHECK_T(IOError, n >= 0 && uint64_t(n) <= in.size(), "decode_checkpoint: bad length ", n, " at byte ", at);
    return size_t(n);
  }
  std::string str() {
    const size_t n = count();
    return std::string(take(n), n);
  }
};

}  // namespace

std::string encode_checkpoint(const CheckpointData& data) {
  Writer w;
  w.i64(int64_t(data.tensors.size()));
  for (const auto& [name, t] : data.tensors) {
    const Tensor c = t.device().is_cpu() ? t.contiguous() : t.to(Device::cpu()).contiguous();
    w.str(name);
    w.i64(int64_t(c.dtype()));
    w.i64(int64_t(c.dim()));
    for (int64_t d : c.shape()) w.i64(d);
    w.i64(int64_t(c.nbytes()));
    w.raw(c.raw_data(), c.nbytes());
  }
  w.i64(int64_t(data.integers.size()));
  for (const auto& [name, v] : data.integers) w.str(name), w.i64(v);
  w.i64(int64_t(data.reals.size()));
  for (const auto& [name, v] : data.reals) w.str(name), w.raw(&v, sizeof v);
  w.i64(int64_t(data.strings.size()));
  for (const auto& [name, v] : data.strings) w.str(name), w.str(v);
  return std::move(w.out);
}

CheckpointData decode_checkpoint(const std::string& bytes) {
  Reader r{bytes};
  CheckpointData d;
  for (size_t n = r.count(); n > 0; --n) {
    std::string name = r.str();
    const int64_t dt = r.i64();
    HALO_CHECK_T(IOError, dt >= 0 && dt <= int64_t(DType::u8), "decode_checkpoint: tensor '", name,
                 "' has an unknown dtype code ", dt);
    Shape shape(r.count());
    for (auto& s : shape) s = r.i64();
    Tensor t = Tensor::empty(shape, DType(dt));
    const size_t nb = r.count();
    HALO_CHECK_T(IOError, nb == t.nbytes(), "decode_checkpoint: tensor '", name, "' of shape ", to_string(shape),
                 " carries ", nb, " bytes, expected ", t.nbytes());
    std::memcpy(t.raw_data(), r.take(nb), nb);
    d.tensors.emplace(std::move(name), std::move(t));
  }
  for (size_t n = r.count(); n > 0; --n) {
    std::string name = r.str();
    d.integers[name] = r.i64();
  }
  for (size_t n = r.count(); n > 0; --n) {
    std::string name = r.str();
    double v;
    std::memcpy(&v, r.take(sizeof v), sizeof v);
    d.reals[name] = v;
  }
  for (size_t n = r.count(); n > 0; --n) {
    std::string name = r.str();
    d.strings[name] = r.str();
  }
  HALO_CHECK_T(IOError, r.at == bytes.size(), "decode_checkpoint: ", bytes.size() - r.at,
               " bytes left after the last entry");
  return d;
}

}  // namespace halo::train
