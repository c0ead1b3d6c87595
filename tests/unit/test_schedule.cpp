// Learning-rate schedules at chosen steps against values worked out by hand.
#include <catch2/catch.hpp>

#include <cmath>

#include "halo/optim/schedule.hpp"
#include "halo/util/error.hpp"

using namespace halo;
using namespace halo::optim;

TEST_CASE("constant and multistep", "[schedule]") {
  CHECK(constant(0.3)(0) == 0.3);
  CHECK(constant(0.3)(100000) == 0.3);
  auto s = multistep(1.0, {10, 20}, 0.5);
  CHECK(s(0) == 1.0);
  CHECK(s(9) == 1.0);
  CHECK(s(10) == 0.5);  // a milestone applies from its own step on
  CHECK(s(19) == 0.5);
  CHECK(s(20) == 0.25);
  CHECK(s(1000) == 0.25);
  CHECK_THROWS_AS(multistep(1.0, {20, 10}, 0.5), ConfigError);
}

TEST_CASE("cosine decays to its floor", "[schedule]") {
  // floor + (lr - floor) * (1 + cos(pi * (s - begin) / (end - begin))) / 2
  auto s = cosine(1.0, 100, 0.1);
  CHECK(s(0) == Approx(1.0));
  CHECK(s(50) == Approx(0.55));                    // cos(pi/2) = 0: halfway
  CHECK(s(25) == Approx(0.1 + 0.9 * (1 + std::sqrt(0.5)) / 2));
  CHECK(s(100) == Approx(0.1));
  CHECK(s(500) == Approx(0.1));
  auto late = cosine(2.0, 30, 0.0, 10);            // starts at step 10
  CHECK(late(5) == 2.0);
  CHECK(late(20) == Approx(1.0));
  CHECK_THROWS_AS(cosine(1.0, 10, 0.0, 10), ConfigError);
}

TEST_CASE("polynomial decay", "[schedule]") {
  // end + (lr - end) * (1 - s/N)^p
  auto lin = polynomial(1.0, 10, 0.0, 1.0);
  CHECK(lin(0) == Approx(1.0));
  CHECK(lin(3) == Approx(0.7));
  CHECK(lin(10) == Approx(0.0));
  auto quad = polynomial(0.5, 100, 0.1, 2.0);
  CHECK(quad(50) == Approx(0.1 + 0.4 * 0.25));   // 0.2
  CHECK(quad(90) == Approx(0.1 + 0.4 * 0.01));   // 0.104
  CHECK(quad(200) == Approx(0.1));
}

TEST_CASE("warmup ramps linearly into the next schedule", "[schedule]") {
  auto w = linear_warmup(4, 0.8);
  CHECK(w(0) == 0.0);
  CHECK(w(1) == Approx(0.2));
  CHECK(w(3) == Approx(0.6));
  CHECK(w(4) == Approx(0.8));
  CHECK(w(40) == Approx(0.8));
  auto from = linear_warmup(4, 0.8, 0.4);
  CHECK(from(2) == Approx(0.6));

  // Warmup over 10 steps into a cosine that starts at step 10 and ends at step 110.
  auto wc = warmup(10, cosine(1.0, 110, 0.0, 10), 0.1);
  CHECK(wc(0) == Approx(0.1));
  CHECK(wc(5) == Approx(0.55));
  CHECK(wc(10) == Approx(1.0));
  CHECK(wc(60) == Approx(0.5));
  CHECK(wc(110) == Approx(0.0).margin(1e-15));

  // Milestones stay absolute after a warmup.
  auto wm = warmup(5, multistep(1.0, {8}, 0.1));
  CHECK(wm(4) == Approx(0.8));
  CHECK(wm(7) == 1.0);
  CHECK(wm(8) == Approx(0.1));
}

TEST_CASE("epoch-based configuration converts to steps", "[schedule]") {
  CHECK(epochs_to_steps(2.5, 100) == 250);
  CHECK_THROWS_AS(epochs_to_steps(1, 0), ConfigError);

  ScheduleConfig c;
  c.kind = "multistep";
  c.lr = 0.004;
  c.warmup_epochs = 4;
  c.warmup_start_lr = 0.001;
  c.milestones = {32, 64};
  c.gamma = 0.25;
  auto s = make_schedule(c, 10);  // 10 steps per epoch
  CHECK(s(0) == Approx(0.001));
  CHECK(s(20) == Approx(0.0025));     // halfway through the 40-step warmup
  CHECK(s(40) == Approx(0.004));
  CHECK(s(319) == Approx(0.004));
  CHECK(s(320) == Approx(0.001));
  CHECK(s(640) == Approx(0.00025));

  ScheduleConfig p;
  p.kind = "polynomial";
  p.lr = 1.0;
  p.warmup_epochs = 1;
  p.decay_epochs = 3;  // decay runs from step 4 to step 12
  p.end_lr = 0.2;
  p.power = 2;
  auto ps = make_schedule(p, 4);
  CHECK(ps(2) == Approx(0.5));
  CHECK(ps(8) == Approx(0.2 + 0.8 * 0.25));
  CHECK(ps(12) == Approx(0.2));

  ScheduleConfig bad;
  bad.kind = "exponential";
  CHECK_THROWS_WITH(make_schedule(bad, 10), Catch::Contains("exponential"));
  ScheduleConfig short_decay;
  short_decay.kind = "cosine";
  short_decay.warmup_epochs = 5;
  short_decay.decay_epochs = 5;
  CHECK_THROWS_AS(make_schedule(short_decay, 10), ConfigError);
}
