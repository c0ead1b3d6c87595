// Optimizer step throughput on one large f32 parameter: time per step and the memory
// traffic it implies (the update rules are bandwidth bound).
//   halo-bench-optim [millions of elements = 8] [steps = 20]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "halo/optim/adam.hpp"
#include "halo/optim/lamb.hpp"
#include "halo/optim/lars.hpp"
#include "halo/optim/sgd.hpp"
#include "halo/util/threads.hpp"
#include "args.hpp"

using namespace halo;

int main(int argc, char** argv) {
  if (halo::bench::help(argc, argv, "usage: halo-bench-optim [millions of elements = 8] [steps = 20]\n  Optimizer step time on one large f32 parameter and the memory traffic it implies.\n")) return 0;
  const int64_t n = int64_t((argc > 1 ? std::atof(argv[1]) : 8.0) * 1e6);
  const int steps = argc > 2 ? std::atoi(argv[2]) : 20;
  nn::Parameter p;
  p.name = "bench/weight";
  p.value = Tensor::full({n}, 0.5);
  p.grad = Tensor::full({n}, 0.01);
  std::printf("%lld f32 elements, %d steps, %d threads\n", (long long)n, steps, num_threads());
  std::printf("%-8s %10s %10s\n", "rule", "ms/step", "GB/s");

  // Bytes moved per element: reads and writes of w, g and the state tensors.
  struct Case {
    const char* name;
    std::unique_ptr<optim::Optimizer> opt;
    double bytes_per_elem;
  };
  Case cases[] = {
      {"sgd", std::make_unique<optim::SGD>(std::vector<nn::Parameter*>{&p}, optim::SGDOptions{0.01, 0.9, false, 1e-4}), 5 * 4},
      {"adam", std::make_unique<optim::Adam>(std::vector<nn::Parameter*>{&p}, optim::AdamOptions{}), 7 * 4},
      {"lamb", std::make_unique<optim::LAMB>(std::vector<nn::Parameter*>{&p}, optim::LAMBOptions{}), 10 * 4},
      {"lars", std::make_unique<optim::LARS>(std::vector<nn::Parameter*>{&p}, optim::LARSOptions{}), 7 * 4},
  };
  for (auto& c : cases) {
    c.opt->step();  // creates the state tensors outside the timing
    auto t0 = std::chrono::steady_clock::now();
    for (int s = 0; s < steps; ++s) c.opt->step();
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / steps;
    std::printf("%-8s %10.3f %10.1f\n", c.name, sec * 1e3, c.bytes_per_elem * double(n) / sec / 1e9);
  }
  return 0;
}
