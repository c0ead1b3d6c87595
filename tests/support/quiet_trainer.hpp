// Trainer options for tests: `epochs` epochs, no progress line, no epoch summary, no final
// checkpoint, so a test's output holds only what it checks.
#pragma once
#include "halo/train/trainer.hpp"

namespace halo::test {

inline train::TrainerOptions quiet(int epochs) {
  train::TrainerOptions o;
  o.epochs = epochs;
  o.progress = false;
  o.epoch_summary = false;
  o.checkpoint_at_end = false;
  return o;
}

}  // namespace halo::test
