// libFuzzer target: Halo's checkpoint reader (halo::train::load_checkpoint).
//
// Input (structure-aware, first byte even): a checkpoint-like file written by
// h5_builder.hpp: datasets under model/, optim/, meta/ or elsewhere, of any rank and
// shape (scalar, null, zero-size), integer/float/string/unsupported element types and
// random values, `halo_dtype` attributes of odd types and values, groups, soft links
// (some dangling) and hard links. First byte odd: a valid checkpoint written by
// save_checkpoint with bytes flipped inside its datasets' raw data.
//
// Contract: load_checkpoint throws a halo::Error (IOError) or returns; never a crash,
// sanitizer report, other exception or allocation beyond -malloc_limit_mb. What it
// returns must survive save_checkpoint + load_checkpoint unchanged (same keys, dtypes,
// shapes and bytes).
#include <cstring>

#include "h5_builder.hpp"
#include "halo/train/checkpoint.hpp"
#include "halo/util/error.hpp"

using namespace halo;
using namespace halo::train;
using halo_fuzz::Id;

namespace {

const std::vector<std::string> kNames = {"model/conv1/weight", "model/conv1/bias", "optim/step",
                                         "optim/conv1/weight/m", "meta/epoch", "meta/step", "meta/lr",
                                         "meta/format", "meta/x/y", "model/bn/running_mean"};

void write_structured(FuzzedDataProvider& p, const std::string& path) {
  Id f(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
  if (f.id < 0) return;
  std::vector<std::string> made;
  for (int k = p.ConsumeIntegralInRange<int>(0, 8); k > 0; --k) {
    const int what = p.ConsumeIntegralInRange<int>(0, 9);
    const std::string name = halo_fuzz::pick_name(p, kNames);
    if (what <= 6) {
      if (halo_fuzz::write_dataset(p, f.id, name)) made.push_back(name);
    } else if (what == 7 && !made.empty()) {  // halo_dtype attribute on a dataset
      static const char* const v[] = {"bf16", "f16", "f32", "", "bogus"};
      Id ds(H5Dopen2(f.id, made[p.ConsumeIntegralInRange<size_t>(0, made.size() - 1)].c_str(), H5P_DEFAULT), H5Dclose);
      if (ds.id >= 0) halo_fuzz::write_attr(p, ds.id, "halo_dtype", v[p.ConsumeIntegralInRange<int>(0, 4)]);
    } else if (what == 8) {  // soft link, maybe dangling
      Id lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
      H5Pset_create_intermediate_group(lcpl.id, 1);
      std::string target = made.empty() || p.ConsumeBool() ? "/nowhere" : "/" + made[0];
      H5Lcreate_soft(target.c_str(), f.id, name.c_str(), lcpl.id, H5P_DEFAULT);
    } else if (!made.empty()) {  // second hard link to a dataset
      Id lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
      H5Pset_create_intermediate_group(lcpl.id, 1);
      H5Lcreate_hard(f.id, made.back().c_str(), f.id, name.c_str(), lcpl.id, H5P_DEFAULT);
    } else {  // empty group
      Id lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
      H5Pset_create_intermediate_group(lcpl.id, 1);
      Id g(H5Gcreate2(f.id, name.c_str(), lcpl.id, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
    }
  }
}

void write_valid(const std::string& path) {
  CheckpointData d;
  Tensor w = Tensor::empty({2, 3}, DType::f32);
  for (int i = 0; i < 6; ++i) static_cast<float*>(w.raw_data())[i] = 0.25f * float(i);
  d.tensors["model/fc/weight"] = w;
  Tensor h = Tensor::empty({4}, DType::bf16);
  std::memset(h.raw_data(), 0x3f, h.nbytes());
  d.tensors["model/fc/half"] = h;
  Tensor s = Tensor::empty({3}, DType::i64);
  std::memset(s.raw_data(), 1, s.nbytes());
  d.tensors["optim/fc/step"] = s;
  d.integers["epoch"] = 3;
  d.reals["lr"] = 0.125;
  d.strings["format"] = "halo-checkpoint";
  save_checkpoint(path, d);
}

bool same(const CheckpointData& a, const CheckpointData& b, std::string& why) {
  if (a.tensors.size() != b.tensors.size() || a.integers != b.integers || a.strings != b.strings ||
      a.reals.size() != b.reals.size()) {
    why = "different keys or scalar values";
    return false;
  }
  for (const auto& [k, v] : a.reals) {
    auto it = b.reals.find(k);
    if (it == b.reals.end() || std::memcmp(&v, &it->second, sizeof v) != 0) {
      why = "meta/" + k;
      return false;
    }
  }
  for (const auto& [k, t] : a.tensors) {
    auto it = b.tensors.find(k);
    if (it == b.tensors.end() || it->second.dtype() != t.dtype() || it->second.shape() != t.shape() ||
        (t.nbytes() > 0 && std::memcmp(t.raw_data(), it->second.raw_data(), t.nbytes()) != 0)) {
      why = k;
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  FuzzedDataProvider p(data, size);
  const std::string dir = halo_fuzz::tmp_dir();
  const std::string path = dir + "/ckpt.h5", again = dir + "/again.h5";
  if (p.ConsumeIntegral<uint8_t>() & 1) {
    static const std::string valid = [&] {
      std::string v = dir + "/valid.h5";
      write_valid(v);
      return v;
    }();
    static const std::vector<halo_fuzz::Region> regions = halo_fuzz::data_regions(valid);
    halo_fuzz::flip_data_bytes(p, valid, path, regions);
  } else {
    write_structured(p, path);
  }
  CheckpointData a;
  try {
    a = load_checkpoint(path);
  } catch (const halo::Error&) {
    return 0;
  }
  // what was read must be writable and read back identically
  save_checkpoint(again, a);
  CheckpointData b = load_checkpoint(again);
  std::string why;
  if (!same(a, b, why)) {
    std::fprintf(stderr, "halo fuzz: checkpoint changed through save + load: %s\n", why.c_str());
    std::abort();
  }
  return 0;
}
