#!/usr/bin/env bash
# Installs the Debian packages Halo needs (only those missing), then configures and builds
# Halo into ./build. Sourced by demo.sh and test.sh; safe to run again (incremental).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$here/build}

# Exactly what the default build and the test suite need on a bare Debian 12, no more:
#   compilers and CMake        build-essential cmake
#   MPI, parallel HDF5         libopenmpi-dev openmpi-bin libhdf5-openmpi-dev
#   BLAS, YAML, JSON           libopenblas-dev libyaml-cpp-dev nlohmann-json3-dev
#   oneDNN                     libdnnl-dev, and ocl-icd-opencl-dev: Debian's oneDNN CMake
#                              package links OpenCL::OpenCL, which libdnnl-dev only recommends
#   Kokkos interop             libtrilinos-kokkos-dev
#   tests                      catch2, python3-h5py python3-numpy (independent HDF5 writer)
#   halo-scaling report/project python3-matplotlib (plots), python3-yaml (machine descriptions)
packages=(build-essential cmake libopenmpi-dev openmpi-bin libhdf5-openmpi-dev
          libopenblas-dev libyaml-cpp-dev nlohmann-json3-dev libdnnl-dev ocl-icd-opencl-dev
          libtrilinos-kokkos-dev catch2 python3-h5py python3-numpy python3-matplotlib python3-yaml)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "halo: installing ${#missing[@]} Debian packages (a few minutes on a bare machine): ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || {
      echo "halo: not root and no sudo: as root, run: apt-get install --no-install-recommends ${missing[*]}" >&2
      exit 1; }
    sudo="sudo"
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

jobs=$(nproc)
# Configure when there is no generated build yet (also after a configure that failed).
if [ ! -f "$BUILD_DIR/Makefile" ] && [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S "$here" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release ${HALO_CMAKE_ARGS:-}
fi
cmake --build "$BUILD_DIR" -j"$jobs"
