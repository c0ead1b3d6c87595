// Convolutions: f64 gradient checks of the reference path through the layers, known
// values, fast f32 kernels against the reference, and errors that name layer and shapes.
#include <catch2/catch.hpp>

#include "gradcheck.hpp"
#include "halo/config.hpp"
#include "halo/nn/conv.hpp"

using namespace halo;
using halo::testing::check_layer_gradients;
using halo::testing::max_abs;
using halo::testing::max_abs_diff;
using halo::testing::random_tensor;

namespace {

template <class L>
std::shared_ptr<L> make_layer(int64_t in, int64_t out, int64_t k, nn::ConvOptions o, DType dt = DType::f64,
                              uint64_t seed = 1) {
  auto l = std::make_shared<L>(in, out, k, o);
  l->set_name("conv");
  for (auto& p : l->parameters()) {
    p.value = p.value.to(dt);
    p.grad = p.grad.to(dt);
  }
  l->init_parameters(seed);
  // A non-zero bias so that its path is exercised.
  if (o.bias) l->parameters()[1].value.copy_(random_tensor({out}, seed + 9, dt, -0.3, 0.3));
  return l;
}

nn::ConvOptions opts(int64_t stride, int64_t pad, int64_t dil = 1, int64_t groups = 1, bool bias = true,
                     ops::Activation act = ops::Activation::none, int64_t out_pad = 0) {
  nn::ConvOptions o;
  o.stride = stride;
  o.padding = pad;
  o.dilation = dil;
  o.groups = groups;
  o.bias = bias;
  o.output_padding = out_pad;
  o.activation.activation = act;
  o.activation.slope = 0.1;
  return o;
}

using A = ops::Activation;

}  // namespace

TEST_CASE("conv forward matches hand-computed values", "[conv]") {
  nn::ConvOptions o = opts(1, 0, 1, 1, false);
  nn::Conv2d c(1, 1, 2, o);
  c.parameters()[0].value.fill_(1.0);
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3});
  auto y = c.forward(x).to_vector<float>();
  CHECK(y == std::vector<float>{12, 16, 24, 28});

  nn::ConvTranspose2d t(1, 1, 2, opts(2, 0, 1, 1, false));
  t.parameters()[0].value.fill_(1.0);
  Tensor xt = Tensor::from_vector<float>({1, 2, 3, 4}, {1, 1, 2, 2});
  Tensor yt = t.forward(xt);
  REQUIRE(yt.shape() == Shape{1, 1, 4, 4});
  CHECK(yt.to_vector<float>() == std::vector<float>{1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4});
}

TEST_CASE("conv2d gradients (f64, finite differences)", "[conv][grad]") {
  SECTION("stride 2, padding 1, odd sizes, bias") {
    auto l = make_layer<nn::Conv2d>(3, 4, 3, opts(2, 1));
    check_layer_gradients(*l, {random_tensor({2, 3, 7, 6}, 11)});
  }
  SECTION("dilation 2, groups 2, fused leaky relu") {
    auto l = make_layer<nn::Conv2d>(4, 6, 3, opts(1, 2, 2, 2, true, A::leaky_relu));
    check_layer_gradients(*l, {random_tensor({1, 4, 7, 6}, 12)});
  }
  SECTION("depthwise, relu, no bias, kernel 2") {
    auto l = make_layer<nn::Conv2d>(4, 4, 2, opts(1, 1, 1, 4, false, A::relu));
    check_layer_gradients(*l, {random_tensor({2, 4, 5, 4}, 13)});
  }
}

TEST_CASE("conv3d gradients (f64, finite differences)", "[conv][grad]") {
  SECTION("same padding, bias, relu") {
    auto l = make_layer<nn::Conv3d>(2, 3, 3, opts(1, 1, 1, 1, true, A::relu));
    check_layer_gradients(*l, {random_tensor({1, 2, 5, 4, 5}, 21)});
  }
  SECTION("stride 2, no padding, groups 2, dilation 2") {
    auto l = make_layer<nn::Conv3d>(2, 4, 2, opts(2, 0, 2, 2, true));
    check_layer_gradients(*l, {random_tensor({2, 2, 6, 5, 7}, 22)});
  }
  SECTION("depthwise, leaky relu") {
    auto l = make_layer<nn::Conv3d>(3, 3, 3, opts(1, 1, 1, 3, false, A::leaky_relu));
    check_layer_gradients(*l, {random_tensor({1, 3, 4, 5, 3}, 23)});
  }
}

TEST_CASE("transposed conv gradients (f64, finite differences)", "[conv][grad]") {
  SECTION("2d stride 2, padding 1, output padding 1, bias") {
    auto l = make_layer<nn::ConvTranspose2d>(3, 2, 3, opts(2, 1, 1, 1, true, A::none, 1));
    check_layer_gradients(*l, {random_tensor({2, 3, 4, 5}, 31)});
  }
  SECTION("2d groups 2, dilation 2, leaky relu") {
    auto l = make_layer<nn::ConvTranspose2d>(4, 6, 3, opts(1, 1, 2, 2, true, A::leaky_relu));
    check_layer_gradients(*l, {random_tensor({1, 4, 3, 4}, 32)});
  }
  SECTION("3d stride 2, output padding 1, relu") {
    auto l = make_layer<nn::ConvTranspose3d>(2, 3, 3, opts(2, 1, 1, 1, true, A::relu, 1));
    check_layer_gradients(*l, {random_tensor({1, 2, 3, 2, 3}, 33)});
  }
  SECTION("3d depthwise, no bias") {
    auto l = make_layer<nn::ConvTranspose3d>(2, 2, 2, opts(2, 0, 1, 2, false));
    check_layer_gradients(*l, {random_tensor({1, 2, 3, 3, 2}, 34)});
  }
}

TEST_CASE("conv layer flops and data-gradient skipping", "[conv]") {
  nn::Conv3d c(4, 32, 3, opts(1, 1));
  CHECK(c.forward_flops({{4, 4, 8, 8, 8}}) == Approx(2.0 * 32 * 4 * 27 * 512));
  nn::ConvTranspose2d t(8, 4, 2, opts(2, 0));
  CHECK(t.forward_flops({{1, 8, 5, 5}}) == Approx(2.0 * 8 * 25 * 4 * 4));
  c.set_input_needs_grad({false});
  Tensor x = random_tensor({1, 4, 4, 4, 4}, 3, DType::f32);
  Tensor y = c.forward(x);
  auto gx = c.backward(Tensor::zeros_like(y).fill_(1.0));
  REQUIRE(gx.size() == 1);
  CHECK_FALSE(gx[0].defined());
  CHECK(max_abs(c.parameters()[1].grad) == Approx(64.0));  // bias grad = count of ones
}

TEST_CASE("conv errors name the layer and the shapes", "[conv]") {
  nn::Conv3d c(4, 8, 3, opts(1, 1));
  c.set_name("conv1");
  try {
    c.forward(Tensor::zeros({2, 5, 8, 8, 8}));
    FAIL("no error for a channel mismatch");
  } catch (const ShapeError& e) {
    const std::string m = e.what();
    CHECK_THAT(m, Catch::Contains("Conv3d 'conv1'"));
    CHECK_THAT(m, Catch::Contains("[2,5,8,8,8]"));
    CHECK_THAT(m, Catch::Contains("[8,4,3,3,3]"));
  }
  try {
    c.forward(Tensor::zeros({2, 4, 8, 8}));
    FAIL("no error for a 2D input to Conv3d");
  } catch (const ShapeError& e) {
    CHECK_THAT(std::string(e.what()), Catch::Contains("Conv3d 'conv1'"));
    CHECK_THAT(std::string(e.what()), Catch::Contains("[2,4,8,8]"));
  }
  nn::Conv2d small(1, 1, 5, opts(1, 0));
  small.set_name("tiny");
  CHECK_THROWS_WITH(small.forward(Tensor::zeros({1, 1, 3, 3})), Catch::Contains("Conv2d 'tiny'") &&
                                                                   Catch::Contains("[1,1,3,3]"));
  CHECK_THROWS_AS(nn::Conv2d(3, 4, 3, opts(1, 1, 1, 2)), ConfigError);
}

// ---- fast f32 kernels against the reference ----

namespace {

Tensor twice(const Tensor& t) {
  auto v = t.to_vector<float>();
  for (auto& e : v) e *= 2;
  return Tensor::from_vector(v, t.shape());
}

/// Runs all passes through `fast` and through the reference and compares.
void compare_with_reference(const Shape& xs, int64_t cin, int64_t cout, int64_t k, const ops::ConvParams& p,
                            ops::ConvEpilogue e, ops::ConvBackend fast, bool channels_last, uint64_t seed,
                            ops::ConvLayout layout = ops::ConvLayout::automatic) {
  Shape ws = ops::conv_weight_shape(cin, cout, std::vector<int64_t>(size_t(p.spatial_dims), k), p);
  Tensor x = random_tensor(xs, seed, DType::f32);
  if (channels_last) x = x.to_memory_format(MemoryFormat::channels_last);
  Tensor w = random_tensor(ws, seed + 1, DType::f32, -0.5, 0.5);
  Tensor b = random_tensor({cout}, seed + 2, DType::f32);
  ops::ConvPlan ref(xs, ws, p, DType::f32, Device::cpu(), e, true, ops::ConvBackend::reference, "ref");
  ops::ConvPlan fst(xs, ws, p, DType::f32, Device::cpu(), e, true, fast, "fast", layout);
  REQUIRE(fst.backend() == fast);
  // A forced blocked layout puts every oneDNN pass on blocked formats, and the plan says so.
  if (fast == ops::ConvBackend::library && layout == ops::ConvLayout::blocked)
    CHECK(fst.kernel() == "onednn blocked-fwd blocked-bwd-data blocked-bwd-weights");
  INFO("input " << to_string(xs) << " " << p.str() << " backend " << ops::name(fast)
                << (channels_last ? " channels_last" : " contiguous"));

  Tensor y_ref = ops::conv_forward(ref, x, w, b), y_fast = ops::conv_forward(fst, x, w, b);
  CHECK(max_abs_diff(y_ref, y_fast) <= 1e-4 * (1 + max_abs(y_ref)));

  Tensor gy = random_tensor(y_ref.shape(), seed + 3, DType::f32);
  if (channels_last) gy = gy.to_memory_format(MemoryFormat::channels_last);
  Tensor gx_ref = ops::conv_backward_data(ref, gy, w), gx_fast = ops::conv_backward_data(fst, gy, w);
  CHECK(max_abs_diff(gx_ref, gx_fast) <= 1e-4 * (1 + max_abs(gx_ref)));
  Tensor gw_ref = Tensor::zeros(ws), gw_fast = Tensor::full(ws, 0.5);
  Tensor gb_ref = Tensor::zeros({cout}), gb_fast = Tensor::full({cout}, 0.5);
  ops::conv_backward_weights(ref, x, gy, gw_ref, gb_ref, /*accumulate=*/false);
  ops::conv_backward_weights(fst, x, gy, gw_fast, gb_fast, /*accumulate=*/false);
  CHECK(max_abs_diff(gw_ref, gw_fast) <= 1e-4 * (1 + max_abs(gw_ref)));
  CHECK(max_abs_diff(gb_ref, gb_fast) <= 1e-4 * (1 + max_abs(gb_ref)));
  // Accumulating adds to what is there.
  ops::conv_backward_weights(fst, x, gy, gw_fast, gb_fast, /*accumulate=*/true);
  CHECK(max_abs_diff(gw_fast, twice(gw_ref)) <= 2e-4 * (1 + max_abs(gw_ref)));
  CHECK(max_abs_diff(gb_fast, twice(gb_ref)) <= 2e-4 * (1 + max_abs(gb_ref)));
  // Weight gradient through the activation (the path of layers whose input needs no
  // gradient, fused into the first-layer kernel) against undoing the activation first on
  // the reference plan; accumulating onto 0.25.
  if (e.activation != ops::Activation::none) {
    ops::conv_backward_weights(ref, x, ops::activation_backward(gy, y_ref, e), gw_ref, gb_ref, false);
    gw_fast.fill_(0.25);
    gb_fast.fill_(0.25);
    ops::conv_backward_weights_through_activation(fst, x, gy, y_fast, gw_fast, gb_fast, /*accumulate=*/true);
    auto minus_quarter = [](const Tensor& t) {
      Tensor c = t.clone();
      for (float* p = c.data<float>(), *end = p + c.numel(); p != end; ++p) *p -= 0.25f;
      return c;
    };
    CHECK(max_abs_diff(minus_quarter(gw_fast), gw_ref) <= 1e-4 * (1 + max_abs(gw_ref)));
    CHECK(max_abs_diff(minus_quarter(gb_fast), gb_ref) <= 1e-4 * (1 + max_abs(gb_ref)));
  }
}

}  // namespace

TEST_CASE("own depthwise kernel matches the reference (f32)", "[conv][depthwise]") {
  ops::ConvEpilogue relu{A::relu, 0}, leaky{A::leaky_relu, 0.2}, none{};
  for (bool cl : {true, false}) {
    // dilation 2 "same" (the DeepLabv3+ exit flow), stride 2, dilation with stride, 5x5,
    // padding larger than the dilated reach, a channel count that fills no vector evenly
    compare_with_reference({2, 24, 9, 11}, 24, 24, 3, ops::ConvParams::uniform(2, 1, 2, 2, 24), none,
                           ops::ConvBackend::depthwise, cl, 700);
    compare_with_reference({1, 19, 10, 13}, 19, 19, 3, ops::ConvParams::uniform(2, 2, 1, 1, 19), relu,
                           ops::ConvBackend::depthwise, cl, 710);
    compare_with_reference({2, 16, 11, 9}, 16, 16, 3, ops::ConvParams::uniform(2, 2, 3, 3, 16), leaky,
                           ops::ConvBackend::depthwise, cl, 720);
    compare_with_reference({1, 8, 8, 7}, 8, 8, 5, ops::ConvParams::uniform(2, 1, 2, 1, 8), none,
                           ops::ConvBackend::depthwise, cl, 730);
    compare_with_reference({1, 8, 6, 7}, 8, 8, 3, ops::ConvParams::uniform(2, 1, 4, 2, 8), none,
                           ops::ConvBackend::depthwise, cl, 740);
  }
  // Chosen automatically for dilated depthwise f32 convolutions only.
  auto pick = [](const ops::ConvParams& p, int64_t c, DType dt) {
    return ops::ConvPlan({1, c, 8, 8}, ops::conv_weight_shape(c, c, {3, 3}, p), p, dt, Device::cpu()).backend();
  };
  CHECK(pick(ops::ConvParams::uniform(2, 1, 2, 2, 32), 32, DType::f32) == ops::ConvBackend::depthwise);
  CHECK(pick(ops::ConvParams::uniform(2, 1, 2, 2, 32), 32, DType::f64) == ops::ConvBackend::reference);
  CHECK(pick(ops::ConvParams::uniform(2, 1, 2, 2, 1), 32, DType::f32) != ops::ConvBackend::depthwise);
  CHECK(pick(ops::ConvParams::uniform(2, 1, 2, 2, 16), 32, DType::f32) != ops::ConvBackend::depthwise);
  CHECK_THROWS_WITH(ops::ConvPlan({1, 32, 8, 8}, {32, 2, 3, 3}, ops::ConvParams::uniform(2, 1, 1, 1, 16), DType::f32,
                                  Device::cpu(), {}, false, ops::ConvBackend::depthwise, "Conv2d 'dw'"),
                    Catch::Contains("Conv2d 'dw'") && Catch::Contains("groups equal"));
}

#if HALO_ENABLE_ONEDNN
TEST_CASE("oneDNN conv matches the reference (f32)", "[conv][onednn]") {
  ops::ConvEpilogue leaky{A::leaky_relu, 0.1}, relu{A::relu, 0}, none{};
  for (bool cl : {true, false}) {
    compare_with_reference({2, 8, 6, 7, 5}, 8, 16, 3, ops::ConvParams::uniform(3, 1, 1), leaky, ops::ConvBackend::library,
                           cl, 100);
    compare_with_reference({2, 6, 9, 8}, 6, 4, 3, ops::ConvParams::uniform(2, 2, 1, 1, 2), relu,
                           ops::ConvBackend::library, cl, 200);
    compare_with_reference({1, 8, 5, 6, 7}, 8, 8, 3, ops::ConvParams::uniform(3, 1, 2, 2, 8), none,
                           ops::ConvBackend::library, cl, 300);
    compare_with_reference({2, 4, 8, 6, 7}, 4, 6, 1, ops::ConvParams::uniform(3, 2, 0), none, ops::ConvBackend::library,
                           cl, 350);
    compare_with_reference({1, 4, 3, 4, 5}, 4, 6, 3, ops::ConvParams::uniform(3, 2, 1, 1, 2, true, 1), relu,
                           ops::ConvBackend::library, cl, 400);
    compare_with_reference({2, 6, 5, 4}, 6, 3, 2, ops::ConvParams::uniform(2, 2, 0, 1, 1, true), none,
                           ops::ConvBackend::library, cl, 500);
  }
}

// The DeepLabv3+ shapes, which run on oneDNN's 2D (nhwc) kernels: depthwise 3x3 at stride 1
// and 2 and at dilation 2, pointwise 1x1, dilated 3x3 (ASPP) and the stride-2 transposed 3x3.
TEST_CASE("oneDNN 2D depthwise, pointwise and transposed convs match the reference (f32)", "[conv][onednn]") {
  ops::ConvEpilogue relu{A::relu, 0}, none{};
  for (bool cl : {true, false}) {
    compare_with_reference({2, 32, 9, 11}, 32, 32, 3, ops::ConvParams::uniform(2, 1, 1, 1, 32), none,
                           ops::ConvBackend::library, cl, 600);
    compare_with_reference({1, 32, 10, 12}, 32, 32, 3, ops::ConvParams::uniform(2, 2, 1, 1, 32), none,
                           ops::ConvBackend::library, cl, 610);
    compare_with_reference({1, 48, 8, 9}, 48, 48, 3, ops::ConvParams::uniform(2, 1, 2, 2, 48), none,
                           ops::ConvBackend::library, cl, 620);
    compare_with_reference({2, 32, 7, 9}, 32, 48, 1, ops::ConvParams::uniform(2), relu, ops::ConvBackend::library,
                           cl, 630);
    compare_with_reference({1, 32, 9, 10}, 32, 16, 3, ops::ConvParams::uniform(2, 1, 3, 3), none,
                           ops::ConvBackend::library, cl, 640);
    compare_with_reference({1, 32, 5, 7}, 32, 16, 3, ops::ConvParams::uniform(2, 2, 1, 1, 1, true, 1), none,
                           ops::ConvBackend::library, cl, 650);
    // the decoder's stride-2 transposed 3x3 (run as four stride-1 phase convolutions), with
    // a fused activation and bias, 2 samples, more output than input channels
    compare_with_reference({2, 16, 4, 6}, 16, 32, 3, ops::ConvParams::uniform(2, 2, 1, 1, 1, true, 1), relu,
                           ops::ConvBackend::library, cl, 660);
    compare_with_reference({1, 16, 3, 5}, 16, 3, 3, ops::ConvParams::uniform(2, 2, 1, 1, 1, true, 1), none,
                           ops::ConvBackend::library, cl, 670);
  }
}

TEST_CASE("oneDNN conv on blocked activation formats matches the reference (f32)", "[conv][onednn]") {
  for (bool cl : {true, false}) {
    compare_with_reference({2, 16, 5, 6, 7}, 16, 32, 3, ops::ConvParams::uniform(3, 1, 1), {A::leaky_relu, 0.1},
                           ops::ConvBackend::library, cl, 900, ops::ConvLayout::blocked);
    compare_with_reference({1, 16, 4, 6, 5}, 16, 16, 3, ops::ConvParams::uniform(3, 2, 1, 1, 1, true, 1), {},
                           ops::ConvBackend::library, cl, 950, ops::ConvLayout::blocked);
  }
}
#endif

TEST_CASE("first-layer kernel matches the reference (f32)", "[conv][first_layer]") {
  if (!ops::first_layer_kernel_available()) {
    WARN("first-layer kernel not built (no AVX-512): skipped");
    return;
  }
  const auto p = ops::ConvParams::uniform(3, 1, 1);
  for (bool cl : {true, false}) {
    // Widths 19 and 13 exercise the remainder blocks of the W register tiling.
    compare_with_reference({2, 4, 5, 6, 19}, 4, 32, 3, p, {A::leaky_relu, 0.1}, ops::ConvBackend::first_layer, cl, 600);
    compare_with_reference({1, 4, 3, 9, 13}, 4, 32, 3, p, {A::relu, 0}, ops::ConvBackend::first_layer, cl, 700);
    compare_with_reference({1, 3, 4, 4, 4}, 3, 32, 3, p, {}, ops::ConvBackend::first_layer, cl, 800);
  }
  // Padding 0 along some axes: a spatially split first layer runs on its halo window.
  for (const std::vector<int64_t>& pads : {std::vector<int64_t>{0, 1, 1}, {1, 0, 1}, {1, 1, 0}, {0, 0, 0}}) {
    ops::ConvParams q = p;
    q.padding = pads;
    compare_with_reference({1, 4, 7, 6, 19}, 4, 32, 3, q, {A::leaky_relu, 0.3}, ops::ConvBackend::first_layer, true,
                           900);
    compare_with_reference({2, 2, 5, 5, 4}, 2, 32, 3, q, {}, ops::ConvBackend::first_layer, true, 910);
  }
  // The automatic choice picks it for the CosmoFlow first layer, whole or split.
  ops::ConvPlan plan({4, 4, 16, 16, 16}, {32, 4, 3, 3, 3}, p, DType::f32, Device::cpu(), {}, true);
  CHECK(plan.backend() == ops::ConvBackend::first_layer);
  ops::ConvParams split = p;
  split.padding = {0, 1, 1};
  ops::ConvPlan window({4, 4, 18, 16, 16}, {32, 4, 3, 3, 3}, split, DType::f32, Device::cpu(), {}, true);
  CHECK(window.backend() == ops::ConvBackend::first_layer);
}

TEST_CASE("strided 1x1 convolution on a large grid with few channels matches the reference, repeatedly") {
  // DeepLabv3+'s skip convolutions at 96x144 (4 -> 8 channels, stride 2, 48x72 grid): oneDNN's
  // nhwc 1x1 kernel corrupted memory here; the outputs of every step stay alive, as a training
  // loop keeps them, so an out-of-bounds write would hit live data or the allocator.
  nn::ConvOptions fast, ref;
  fast.stride = ref.stride = 2;
  fast.bias = ref.bias = false;
  ref.backend = ops::ConvBackend::reference;
  nn::Conv2d a(4, 8, 1, fast), b(4, 8, 1, ref);
  a.init_parameters(1);
  b.weight().value.copy_(a.weight().value);
  Tensor x = random_tensor({2, 4, 48, 72}, 3, DType::f32).to_memory_format(MemoryFormat::channels_last);
  std::vector<Tensor> kept;
  for (int step = 0; step < 4; ++step) {
    a.weight().grad = Tensor::zeros_like(a.weight().value);
    b.weight().grad = Tensor::zeros_like(b.weight().value);
    Tensor ya = a.forward(x), yb = b.forward(x);
    CHECK(max_abs_diff(ya, yb) < 1e-5);
    Tensor g = random_tensor(ya.shape(), 10 + uint64_t(step), DType::f32);
    Tensor dxa = a.backward(g)[0], dxb = b.backward(g)[0];
    CHECK(max_abs_diff(dxa, dxb) < 1e-5);
    CHECK(max_abs_diff(a.weight().grad, b.weight().grad) < 1e-3);
    kept.push_back(ya);
    kept.push_back(dxa);
  }
}
