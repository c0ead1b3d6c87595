// Spatial parallelism: every spatially split layer, and the whole CosmoFlow model, computes
// on its block what the unsplit layer computes on the whole volume. On every grid the launch
// allows (2, 4 and 8 ranks: splits along one, two and three axes, uneven ones included):
//  - forward: each rank's output block equals the same block of the one-rank output;
//  - backward: each rank's input-gradient block equals the same block of the one-rank input
//    gradient, and the parameter gradients (summed over the group) equal the one-rank ones;
// in f64 to 1e-10 and in f32 within a bound from f32's precision. A spatial x data run
// (2 x 2) takes the same optimizer step as the 4-rank data-parallel run of the same global
// batch, and bad grids and blocks fail with errors that say what is wrong.
#include <catch2/catch.hpp>
#include <mpi.h>

#include <cmath>

#include "gradcheck.hpp"
#include "halo/dist/spatial_grid.hpp"
#include "halo/models/cosmoflow.hpp"
#include "halo/nn/batchnorm.hpp"
#include "halo/nn/losses.hpp"
#include "halo/optim/sgd.hpp"
#include "halo/train/trainer.hpp"
#include "mpi_world.hpp"
#include "quiet_trainer.hpp"

using namespace halo;
using halo::test::world_rank;
using halo::test::world_size;
using halo::testing::max_abs;
using halo::testing::max_abs_diff;
using halo::testing::random_tensor;

namespace {

using Parts = std::array<int, 3>;

// Grids whose size is the whole launch (pure spatial parallelism), uneven splits included
// by the extents the tests use.
std::vector<Parts> grids_of_world() {
  switch (world_size()) {
    case 1: return {{1, 1, 1}};
    case 2: return {{2, 1, 1}, {1, 2, 1}, {1, 1, 2}};
    case 4: return {{4, 1, 1}, {2, 2, 1}, {1, 2, 2}, {2, 1, 2}};
    case 8: return {{2, 2, 2}, {8, 1, 1}, {4, 2, 1}};
    default: return {{world_size(), 1, 1}};
  }
}

std::string grid_name(const Parts& p) { return str(p[0], "x", p[1], "x", p[2]); }

// All ranks agree that every rank passed (a failing rank must not leave the others in a
// collective of the next case).
void require_all(bool ok, const std::string& what) {
  int bad = ok ? 0 : 1;
  MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  INFO(what);
  REQUIRE(bad == 0);
}

void set_dtype(nn::Layer& l, DType dt) {
  for (auto& p : l.parameters()) {
    p.value = p.value.to(dt);
    p.grad = p.grad.to(dt);
  }
}

// One layer, split and unsplit, with the same parameters and the same global input and
// output gradient; compares outputs, input gradients and parameter gradients.
void compare_layer(const std::shared_ptr<dist::SpatialGrid>& grid, nn::Layer& whole, nn::Layer& split,
                   const Shape& x_shape, DType dt, MemoryFormat fmt, double tol, const std::string& what) {
  for (size_t i = 0; i < whole.parameters().size(); ++i) {
    split.parameters()[i].value.copy_(whole.parameters()[i].value);
    whole.parameters()[i].grad.zero_();
    split.parameters()[i].grad.zero_();
  }
  const Tensor x = random_tensor(x_shape, 11, dt).to_memory_format(fmt);
  const Tensor y = whole.forward(x);
  const Tensor gy = random_tensor(y.shape(), 12, dt).to_memory_format(fmt);
  const Tensor gx = whole.backward(gy).at(0);

  const Tensor xb = nn::spatial_block(*grid, x);
  const Tensor yb = split.forward(xb);
  const Tensor gyb = nn::spatial_block(*grid, gy);
  const Tensor gxb = split.backward(gyb).at(0);

  const double scale = std::max(1.0, max_abs(y));
  bool ok = yb.shape() == nn::spatial_block(*grid, y).shape() &&
            max_abs_diff(yb, nn::spatial_block(*grid, y)) <= tol * scale;
  if (gx.defined()) ok = ok && max_abs_diff(gxb, nn::spatial_block(*grid, gx)) <= tol * std::max(1.0, max_abs(gx));
  for (size_t i = 0; i < whole.parameters().size(); ++i) {
    const Tensor& gw = whole.parameters()[i].grad;
    ok = ok && max_abs_diff(split.parameters()[i].grad, gw) <= tol * std::max(1.0, max_abs(gw));
  }
  require_all(ok, what + " on " + grid->describe());
}

struct ConvCase {
  int64_t k, stride, pad, dil;
};

}  // namespace

TEST_CASE("halo window ranges", "[spatial]") {
  CHECK(nn::split_range(10, 3, 0) == nn::IndexRange{0, 4});
  CHECK(nn::split_range(10, 3, 1) == nn::IndexRange{4, 7});
  CHECK(nn::split_range(10, 3, 2) == nn::IndexRange{7, 10});
  CHECK(dist::parse_spatial_parts("2x2x1") == Parts{2, 2, 1});
  CHECK(dist::parse_spatial_parts("[4, 1, 2]") == Parts{4, 1, 2});
  CHECK(dist::parse_spatial_parts("8") == Parts{8, 1, 1});
  CHECK_THROWS_AS(dist::parse_spatial_parts("2x0"), ConfigError);
  CHECK_THROWS_AS(dist::parse_spatial_parts("2xfoo"), ConfigError);
}

TEST_CASE("spatial convolutions equal the unsplit ones", "[spatial]") {
  dist::Communicator world(MPI_COMM_WORLD);
  const std::vector<ConvCase> cases = {{3, 1, 1, 1}, {3, 2, 1, 1}, {5, 1, 2, 1}, {3, 1, 2, 2}, {2, 2, 0, 1}, {1, 1, 0, 1}};
  for (const Parts& parts : grids_of_world()) {
    auto grid = std::make_shared<dist::SpatialGrid>(world, parts);
    for (const auto& c : cases) {
      for (DType dt : {DType::f64, DType::f32}) {
        nn::ConvOptions o;
        o.stride = c.stride;
        o.padding = c.pad;
        o.dilation = c.dil;
        o.activation = {ops::Activation::leaky_relu, 0.3};
        const std::vector<int64_t> global{17, 10, 9};  // uneven over 2, 4 and 8 parts
        nn::Conv3d whole(3, 4, c.k, o);
        nn::SpatialConv3d split(grid, global, 3, 4, c.k, o);
        whole.set_name("conv");
        whole.init_parameters(5);
        whole.parameters()[1].value.copy_(random_tensor({4}, 9, DType::f32, -0.3, 0.3));
        set_dtype(whole, dt);
        set_dtype(split, dt);
        const double tol = dt == DType::f64 ? 1e-10 : 2e-5;
        const auto fmt = dt == DType::f32 ? MemoryFormat::channels_last : MemoryFormat::contiguous;
        compare_layer(grid, whole, split, {2, 3, 17, 10, 9}, dt, fmt, tol,
                      str("conv k", c.k, " s", c.stride, " p", c.pad, " d", c.dil, " ", name(dt), " grid ",
                          grid_name(parts)));
        // 3x3x3, stride 1, padding 1: the halo travels while the block's interior is computed
        // (MPI_THREAD_MULTIPLE), on every rank whose block is at least 3 cells thick and
        // outweighs the weights 8 times (else the pieces' weight copies would not pay).
        if (c.k == 3 && c.stride == 1 && c.pad == 1 && grid->concurrent_exchange()) {
          bool eligible = parts[0] * parts[1] * parts[2] > 1;  // one rank: no halo
          int64_t cells = 2 * 3;
          for (int a = 0; a < 3; ++a) {
            eligible = eligible && (parts[size_t(a)] == 1 || split.window().own_in(a).size() >= 3);
            cells *= split.window().own_in(a).size();
          }
          eligible = eligible && cells * int64_t(size_of(dt)) >= 8 * int64_t(split.weight().value.nbytes());
          require_all(!eligible || split.overlapped_forwards() == 1, "the halo exchange overlapped the interior");
          if (parts == Parts{2, 1, 1}) require_all(eligible, "the 2x1x1 blocks qualify for the overlap");
        }
      }
    }
  }
}

TEST_CASE("a split CosmoFlow first layer runs the first-layer kernel on its window", "[spatial]") {
  // 4 -> 32 channels, 3x3x3, padding 1: the own AVX-512 kernel where built, with padding 0
  // along the split axes (the window carries the halo).
  dist::Communicator world(MPI_COMM_WORLD);
  for (const Parts& parts : grids_of_world()) {
    auto grid = std::make_shared<dist::SpatialGrid>(world, parts);
    nn::ConvOptions o;
    o.padding = 1;
    o.activation = {ops::Activation::leaky_relu, 0.3};
    const std::vector<int64_t> global{12, 10, 9};
    nn::Conv3d whole(4, 32, 3, o);
    nn::SpatialConv3d split(grid, global, 4, 32, 3, o);
    whole.init_parameters(6);
    whole.set_input_needs_grad({false});  // as the model's first layer: weight gradients only
    split.set_input_needs_grad({false});
    compare_layer(grid, whole, split, {2, 4, 12, 10, 9}, DType::f32, MemoryFormat::channels_last, 2e-5,
                  "first layer, grid " + grid_name(parts));
    if (ops::first_layer_kernel_available()) require_all(split.plan().backend() == ops::ConvBackend::first_layer,
                                                         "the split first layer's kernel");
  }
}

TEST_CASE("spatial pooling, BatchNorm and gather equal the unsplit ones", "[spatial]") {
  dist::Communicator world(MPI_COMM_WORLD);
  for (const Parts& parts : grids_of_world()) {
    auto grid = std::make_shared<dist::SpatialGrid>(world, parts);
    const std::vector<int64_t> global{24, 10, 8};
    const Shape xs{2, 3, 24, 10, 8};
    {
      nn::MaxPool3d whole(2);
      nn::SpatialMaxPool3d split(grid, global, 2);
      compare_layer(grid, whole, split, xs, DType::f64, MemoryFormat::contiguous, 1e-12, "max pool k2 s2");
    }
    {
      nn::PoolNd whole(nn::pool_config(ops::PoolKind::avg, 3, 3, 2, 0));
      nn::SpatialPoolNd split(grid, global, nn::pool_config(ops::PoolKind::avg, 3, 3, 2, 0));
      compare_layer(grid, whole, split, xs, DType::f64, MemoryFormat::contiguous, 1e-12, "avg pool k3 s2");
    }
    {
      nn::BatchNorm3d whole(3, 1e-5, 0.1, DType::f64);
      nn::SpatialBatchNormNd split(grid, 3, 3, 1e-5, 0.1, DType::f64);
      whole.init_parameters(0);
      split.init_parameters(0);
      compare_layer(grid, whole, split, xs, DType::f64, MemoryFormat::contiguous, 1e-10, "BatchNorm over the volume");
    }
    {
      nn::SpatialGather gather(grid, global);
      const Tensor x = random_tensor(xs, 3);
      const Tensor y = gather.forward(nn::spatial_block(*grid, x));
      const Tensor g = random_tensor(xs, 4);
      const Tensor gb = gather.backward(g).at(0);
      require_all(max_abs_diff(y, x) == 0 && max_abs_diff(gb, nn::spatial_block(*grid, g)) == 0,
                  "gather to the whole volume and its backward");
    }
  }
}

TEST_CASE("spatial CosmoFlow equals the unsplit model", "[spatial]") {
  dist::Communicator world(MPI_COMM_WORLD);
  models::CosmoFlowOptions o;
  o.input_size = 16;
  o.conv_layers = 3;
  o.base_filters = 2;
  o.dense = {8};
  o.dropout = 0.5;  // the same mask on every rank of the group: dropout_seed is shared
  o.dropout_seed = 7;
  const Shape xs{2, 4, 16, 16, 16};
  for (const Parts& parts : grids_of_world()) {
    auto grid = std::make_shared<dist::SpatialGrid>(world, parts);
    for (DType dt : {DType::f64, DType::f32}) {
      nn::Model whole = models::cosmoflow(o);
      models::CosmoFlowOptions os = o;
      os.spatial = grid;
      nn::Model split = models::cosmoflow(os);
      whole.init(3);
      split.init(3);  // same names, same values
      for (nn::Model* m : {&whole, &split})
        for (auto* p : m->parameters()) {
          p->value = p->value.to(dt);
          p->grad = p->grad.to(dt);
        }
      const auto fmt = dt == DType::f32 ? MemoryFormat::channels_last : MemoryFormat::contiguous;
      const Tensor x = random_tensor(xs, 21, dt, 0.0, 1.0).to_memory_format(fmt);
      const Tensor y = whole.forward(x);
      const Tensor ys = split.forward(nn::spatial_block(*grid, x));
      const Tensor gy = random_tensor(y.shape(), 22, dt);
      whole.zero_grad();
      split.zero_grad();
      whole.backward(gy);
      split.backward(gy);
      const double tol = dt == DType::f64 ? 1e-10 : 1e-4;
      bool ok = max_abs_diff(ys, y) <= tol * std::max(1.0, max_abs(y));
      const auto pw = whole.parameters(), ps = split.parameters();
      ok = ok && pw.size() == ps.size();
      for (size_t i = 0; ok && i < pw.size(); ++i) {
        const double d = max_abs_diff(ps[i]->grad, pw[i]->grad), m = std::max(1e-3, max_abs(pw[i]->grad));
        if (d > tol * m) {
          UNSCOPED_INFO(pw[i]->name << ": gradient differs by " << d << " (largest " << m << ")");
          ok = false;
        }
      }
      require_all(ok, str("CosmoFlow ", name(dt), " grid ", grid_name(parts)));
    }
  }
}

TEST_CASE("spatial x data parallel step equals the data-parallel step", "[spatial]") {
  if (world_size() != 4) return;  // 2 replicas x 2-rank groups against 4 replicas
  dist::Communicator world(MPI_COMM_WORLD);
  models::CosmoFlowOptions o;
  o.input_size = 8;
  o.conv_layers = 2;
  o.base_filters = 2;
  o.dense = {4};
  o.dropout = 0;
  const Tensor all_x = random_tensor({4, 4, 8, 8, 8}, 31, DType::f64, 0.0, 1.0);
  const Tensor all_y = random_tensor({4, 4}, 32, DType::f64, -0.5, 0.5);

  auto run = [&](std::shared_ptr<dist::SpatialGrid> grid) {
    models::CosmoFlowOptions os = o;
    os.spatial = grid;
    nn::Model m = models::cosmoflow(os);
    m.init(4);
    for (auto* p : m.parameters()) {
      p->value = p->value.to(DType::f64);
      p->grad = p->grad.to(DType::f64);
    }
    optim::SGD sgd(m.parameters(), {.lr = 0.1});
    nn::MSELoss loss;
    train::TrainerOptions to = halo::test::quiet(1);
    to.input_format = MemoryFormat::contiguous;
    Tensor x, y;
    if (grid) {
      to.data_comm = grid->data();
      const int replica = grid->data().rank();  // samples 2r, 2r+1
      x = nn::spatial_block(*grid, all_x.slice(2 * replica, 2 * replica + 2));
      y = all_y.slice(2 * replica, 2 * replica + 2).contiguous();
    } else {
      x = all_x.slice(world_rank(), world_rank() + 1).contiguous();
      y = all_y.slice(world_rank(), world_rank() + 1).contiguous();
    }
    train::Trainer t(world, m, sgd, loss, to);
    t.step(x, y);
    std::vector<Tensor> values;
    for (auto* p : m.parameters()) values.push_back(p->value.clone());
    return values;
  };
  const auto dp = run(nullptr);
  const auto sd = run(std::make_shared<dist::SpatialGrid>(world, Parts{2, 1, 1}));
  bool ok = dp.size() == sd.size();
  for (size_t i = 0; ok && i < dp.size(); ++i) ok = max_abs_diff(dp[i], sd[i]) <= 1e-10 * std::max(1.0, max_abs(dp[i]));
  require_all(ok, "parameters after one step: 2x(2x1x1) spatial x data against 4 data-parallel ranks");
}

TEST_CASE("spatial errors name the grid, the layer and the block", "[spatial]") {
  dist::Communicator world(MPI_COMM_WORLD);
  const int n = world_size();
  if (n < 2) return;
  // A grid that does not divide the launch.
  REQUIRE_THROWS_WITH(dist::SpatialGrid(world, Parts{n + 1, 1, 1}), Catch::Contains("does not divide"));
  auto grid = std::make_shared<dist::SpatialGrid>(world, Parts{n, 1, 1});
  // Too few cells for the ranks along an axis.
  REQUIRE_THROWS_WITH(nn::SpatialConv3d(grid, {n - 1, 8, 8}, 1, 1, 1, {}), Catch::Contains("without cells"));
  // A block that is not this rank's.
  nn::SpatialConv3d conv(grid, {4 * n, 8, 8}, 1, 1, 3, {});
  conv.set_name("c");
  REQUIRE_THROWS_WITH(conv.output_shape({{1, 1, 4 * n, 8, 8}}), Catch::Contains("not this rank's block"));
  // Max pooling padded along a split axis.
  REQUIRE_THROWS_WITH(nn::SpatialPoolNd(grid, {8 * n, 8, 8}, nn::pool_config(ops::PoolKind::max, 3, 3, 2, 1)),
                      Catch::Contains("padding"));
}
