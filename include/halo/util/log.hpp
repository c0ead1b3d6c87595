// Rank-aware logging: by default only rank 0 speaks at info level; warnings and errors
// from any rank are printed with the rank in front, so a failure on rank 913 says so.
#pragma once
#include <string>

#include "halo/util/error.hpp"

namespace halo::log {

enum class Level { debug, info, warn, error };

/// Set once the communicator is known (drivers do it; Communicator does it too).
void set_rank(int rank, int size);
void set_level(Level level);
Level level();
int rank();

void write(Level level, const std::string& message, bool all_ranks);

template <class... Args>
void info(Args&&... args) {
  write(Level::info, str(std::forward<Args>(args)...), false);
}
template <class... Args>
void debug(Args&&... args) {
  write(Level::debug, str(std::forward<Args>(args)...), false);
}
template <class... Args>
void warn(Args&&... args) {
  write(Level::warn, str(std::forward<Args>(args)...), true);
}
template <class... Args>
void error(Args&&... args) {
  write(Level::error, str(std::forward<Args>(args)...), true);
}

}  // namespace halo::log
