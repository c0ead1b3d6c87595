#!/usr/bin/env bash
# Builds Halo (library, example drivers, CPU tests) with AddressSanitizer and
# UndefinedBehaviorSanitizer into a separate build folder and runs the CPU test suite there
# (every ctest test except label gpu). Any sanitizer report fails the test that produced it:
# ASan halts on the first error, UBSan is compiled with -fno-sanitize-recover=all (every
# UB check aborts) and prints a stack trace.
#
#   scripts/check-sanitizers.sh [extra ctest arguments, e.g. -R test_tensor]
#
# Environment:
#   BUILD_DIR   build folder (default: build-asan in the repository root)
#   JOBS        build and ctest parallelism (default: nproc)
#   CC, CXX     compilers (default: gcc, g++; clang/clang++ work too)
#   HALO_CMAKE_ARGS  extra configure arguments
#
# Leak detection is off (detect_leaks=0): Open MPI and its plugins (PMIx, hwloc, UCX) leak
# by design at MPI_Finalize, and LeakSanitizer would fail every MPI-linked test on those.
# tests/sanitizers/lsan.supp lists them for anyone who turns it on (HALO_DETECT_LEAKS=1).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$here/build-asan}
JOBS=${JOBS:-$(nproc)}
CC=${CC:-gcc}
CXX=${CXX:-g++}

san="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
# The consumer-project test configures a second CMake project against the installed
# (sanitized) library: exported CFLAGS/CXXFLAGS/LDFLAGS give it the same flags.
export CFLAGS="$san" CXXFLAGS="$san" LDFLAGS="-fsanitize=address,undefined"

start=$(date +%s)
# Ninja when it is installed (faster incremental builds), make otherwise.
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  cmake -S "$here" -B "$BUILD_DIR" "${generator[@]}" \
    -DCMAKE_C_COMPILER="$CC" -DCMAKE_CXX_COMPILER="$CXX" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_FLAGS="$san" -DCMAKE_CXX_FLAGS="$san" \
    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
    -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" \
    -DHALO_ENABLE_CUDA=OFF -DHALO_ENABLE_EXAMPLES=ON -DHALO_ENABLE_TESTS=ON \
    ${HALO_CMAKE_ARGS:-}
fi
cmake --build "$BUILD_DIR" -j"$JOBS"
built=$(date +%s)

supp="$here/tests/sanitizers"
# halt_on_error/abort_on_error: the first report kills the process, so the test fails.
# UCX's malloc and mmap hooks fight ASan's allocator, so they are off.
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=${HALO_DETECT_LEAKS:-0}:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1:print_summary=1:suppressions=$supp/asan.supp"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1:print_summary=1:suppressions=$supp/ubsan.supp"
export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0"
export UCX_MEM_MALLOC_HOOKS=no UCX_MEM_MMAP_HOOK_MODE=none
# Sanitized code runs 2-5x slower: let every test take three times its usual limit.
cd "$BUILD_DIR"
rc=0
ctest --output-on-failure -j"$JOBS" -LE gpu --timeout 900 "$@" || rc=$?
end=$(date +%s)
echo "check-sanitizers: build $((built - start)) s, tests $((end - built)) s, total $((end - start)) s, ctest exit $rc"
exit $rc
