#!/usr/bin/env bash
# Sets up and builds Halo (scripts/setup.sh), then runs the whole test suite: unit tests,
# MPI tests under mpiexec with 2 and 4 ranks, and GPU tests when a GPU is present.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$here/scripts/setup.sh"
cd "${BUILD_DIR:-$here/build}"
ctest --output-on-failure -j"$(nproc)" "$@"
