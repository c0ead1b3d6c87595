#!/usr/bin/env bash
# Installs the Debian packages Halo needs (only those missing), then configures and builds
# Halo into ./build. Sourced by demo.sh and test.sh; safe to run again (incremental).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$here/build}

packages=(build-essential cmake pkg-config libopenmpi-dev openmpi-bin libhdf5-openmpi-dev hdf5-tools
          catch2 libdnnl-dev libopenblas-dev libyaml-cpp-dev nlohmann-json3-dev
          libtrilinos-kokkos-dev python3-h5py python3-numpy)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "halo: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

jobs=$(nproc)
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  cmake -S "$here" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release ${HALO_CMAKE_ARGS:-}
fi
cmake --build "$BUILD_DIR" -j"$jobs"
