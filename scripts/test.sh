#!/usr/bin/env bash
# Sets up and builds Halo (scripts/setup.sh), then runs the whole test suite: unit, MPI
# tests under mpiexec with 2 and 4 ranks, fault tests, and GPU tests when a GPU is present.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$here/scripts/setup.sh"

build=${BUILD_DIR:-$here/build}
# The MLPerf log tests run the official compliance checker (mlperf-logging, from PyPI) when
# it can be installed, with the Python the tests run (chosen by CMake: one with h5py);
# without it they are reported as skipped. --no-deps: its optional dependencies would bring
# a numpy that breaks Debian's h5py; the checker needs only PyYAML.
py=$(sed -n 's/^HALO_TEST_PYTHON_USED:INTERNAL=//p' "$build/CMakeCache.txt" 2>/dev/null || true)
py=${py:-python3}
if ! "$py" -c "import mlperf_logging" 2>/dev/null; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && sudo="sudo"
  for p in python3-pip python3-yaml; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$p" >/dev/null 2>&1 || true
  done
  echo "halo: installing mlperf-logging (the MLPerf compliance checker) from PyPI for the tests"
  "$py" -m pip install -q --user --break-system-packages --no-deps mlperf-logging 2>/dev/null ||
    echo "halo: mlperf-logging could not be installed: the MLPerf log tests will be reported as skipped"
fi

cd "$build"
ctest --output-on-failure -j"$(nproc)" "$@"
