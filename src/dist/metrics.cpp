#include "halo/dist/metrics.hpp"

#include <vector>

#include "halo/dist/model_sync.hpp"

namespace halo::dist {

void MetricReducer::add(const std::string& name, double sum, double count) {
  Total& t = local_[name];
  t.sum += sum;
  t.count += count;
}

std::map<std::string, MetricReducer::Total> MetricReducer::reduce_totals(const Communicator& comm) const {
  // The names must agree, or the sums would mix different metrics: the same check as for
  // models (a few hashes, one collective, an error on every rank).
  std::vector<TensorSignature> names;
  for (auto& kv : local_) names.push_back({kv.first, Shape{2}, DType::f64});
  check_same_signatures(comm, names, "metric set");
  std::vector<double> v;
  for (auto& kv : local_) {
    v.push_back(kv.second.sum);
    v.push_back(kv.second.count);
  }
  if (!v.empty()) comm.allreduce_sum(v.data(), v.size(), "metric reduction");
  std::map<std::string, Total> out;
  size_t i = 0;
  for (auto& kv : local_) {
    out[kv.first] = Total{v[i], v[i + 1]};
    i += 2;
  }
  return out;
}

std::map<std::string, double> MetricReducer::reduce_means(const Communicator& comm) const {
  std::map<std::string, double> means;
  for (auto& kv : reduce_totals(comm)) means[kv.first] = kv.second.count > 0 ? kv.second.sum / kv.second.count : 0.0;
  return means;
}

}  // namespace halo::dist
