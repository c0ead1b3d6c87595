// Private to the library and its tests: how many checkpoint files this process has opened
// for reading, so the tests can check that a resume reads the file on one rank only.
#pragma once
#include <cstdint>

namespace halo::train {

int64_t checkpoint_files_loaded();

}  // namespace halo::train
