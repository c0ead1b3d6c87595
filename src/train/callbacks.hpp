// The callbacks Trainer::fit() builds from TrainerOptions (progress line, metrics file,
// MLPerf log, epoch summary). Private: a program adds its own through Trainer::add_callback.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "halo/train/callback.hpp"
#include "halo/train/trainer.hpp"

namespace halo::train {

/// The callbacks `o` asks for, in the order they must run at an epoch's end (metrics file
/// before the summary line, as the logs have always shown them).
std::vector<std::unique_ptr<Callback>> builtin_callbacks(const TrainerOptions& o, bool rank0, bool resumed);

/// "train: done: 3 epochs, 12 steps in 4s, 120 samples/s, val mae 0.1": the last line of fit().
std::string fit_done_line(const TrainerOptions& o, const FitResult& r, double seconds, bool checkpoint_written);

}  // namespace halo::train
