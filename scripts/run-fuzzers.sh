#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/ with clang (ASan + UBSan) and runs each for the
# given time, then merges the fewest inputs that add edge coverage (set-cover merge, hit
# counts ignored) into the committed corpus
# (tests/fuzz/corpus/<target>/). Crashes are left in $BUILD_DIR/artifacts/ and make the
# script fail; once fixed, copy each into the corpus as a regression input.
#
#   scripts/run-fuzzers.sh [seconds per target, default 600] [target...]   (config dataset checkpoint)
#
# Environment: BUILD_DIR (default build-fuzz), JOBS (targets fuzzed at once, default 1),
# HALO_FUZZ_MERGE=0 to leave the corpus alone, CC/CXX (default clang/clang++).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
secs=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config dataset checkpoint)
BUILD_DIR=${BUILD_DIR:-$here/build-fuzz}
JOBS=${JOBS:-1}

if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  cmake -S "$here/tests/fuzz" -B "$BUILD_DIR" -DCMAKE_C_COMPILER="${CC:-clang}" -DCMAKE_CXX_COMPILER="${CXX:-clang++}"
fi
cmake --build "$BUILD_DIR" -j"$(nproc)"

export HALO_FUZZ_TMP="$BUILD_DIR"
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1" UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
opts=(-rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=30 -print_final_stats=1)

fuzz_one() {
  local t=$1 work="$BUILD_DIR/fuzz-work/$t" corpus="$here/tests/fuzz/corpus/$t"
  mkdir -p "$work" "$BUILD_DIR/artifacts"
  local start=$(date +%s) rc=0
  "$BUILD_DIR/fuzz_$t" "${opts[@]}" -max_total_time="$secs" -artifact_prefix="$BUILD_DIR/artifacts/$t-" \
    "$work" "$corpus" >"$BUILD_DIR/fuzz-$t.log" 2>&1 || rc=$?
  local last=$(grep -E '^#[0-9]+' "$BUILD_DIR/fuzz-$t.log" | tail -1)
  local execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$BUILD_DIR/fuzz-$t.log")
  echo "fuzz_$t: $(( $(date +%s) - start )) s, ${execs:-?} executions, exit $rc; last: $last"
  if [ $rc -ne 0 ]; then
    grep -E 'SUMMARY|ERROR: |halo fuzz' "$BUILD_DIR/fuzz-$t.log" | head -5
    return 1
  fi
  if [ "${HALO_FUZZ_MERGE:-1}" != 0 ]; then
    local before=$(ls "$corpus" | wc -l)
    "$BUILD_DIR/fuzz_$t" "${opts[@]}" -set_cover_merge=1 -use_counters=0 "$corpus" "$work" >"$BUILD_DIR/merge-$t.log" 2>&1
    echo "fuzz_$t: corpus $before -> $(ls "$corpus" | wc -l) files (tests/fuzz/corpus/$t)"
  fi
}

status=0
pids=()
for t in "${targets[@]}"; do
  fuzz_one "$t" &
  pids+=($!)
  if [ ${#pids[@]} -ge "$JOBS" ]; then
    wait "${pids[0]}" || status=1
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || status=1; done
ls "$BUILD_DIR"/artifacts/ 2>/dev/null | sed 's/^/artifact: /' || true
exit $status
