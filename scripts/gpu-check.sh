#!/usr/bin/env bash
# Halo's GPU check: the `gpu`-labelled tests (both drivers' GPU learning tests among them) and
# the GPU benchmarks, on a machine with a GPU and nothing installed beyond its CUDA image.
#
#   scripts/gpu-check.sh pack [--build DIR] [--xz N]
#       Here (the CPU machine, after ./scripts/setup.sh built the CUDA backend): builds what the
#       check runs and packs it, with the Debian libraries and Open MPI it needs, into
#       .gpu-bundle/halo-gpu-bundle.tar.xz (about 30 MiB; scripts/gpu_bundle.py says what is in it).
#   scripts/gpu-check.sh run [--dry-run] [--out DIR] [--budget SECONDS]
#       There: unpacks the bundle, finds the machine's CUDA libraries, runs
#       `ctest -L '^gpu$' --output-on-failure` (that label exactly), halo-cosmoflow on the GPU
#       with training.cuda_graph, halo-bench-cosmoflow --device cuda (f32 and bf16),
#       halo-bench-conv --device cuda and the PyTorch twin of the step, and writes everything
#       under DIR (default out/gpu-check): gpu-check.log (the whole run), summary.txt (one line
#       per step), results.tar.gz (ctest's logs and JUnit file, each benchmark's output).
#       --dry-run does all of that but the GPU steps, which it names: it checks that every
#       program finds its libraries, that mpiexec from the bundle starts ranks, that the test
#       list is complete, generates the tests' data, and trains on the CPU on 2 ranks.
#   scripts/gpu-check.sh rehearse
#       pack, then `run --dry-run` in a bare Debian 12 root that has nothing but the CUDA
#       toolkit (bound from /usr/local/cuda): what the GPU machine lacks, this lacks too.
#
# The device session: pack here, then on the GPU machine, with .gpu-bundle carried,
#   scripts/gpu-check.sh run --out "$OUT"
# It is planned to end within --budget seconds (default 540): a step that would not fit in
# what is left is skipped and named in the summary.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUNDLE_DIR="$ROOT/.gpu-bundle"
die() { echo "gpu-check: $*" >&2; exit 1; }

pack() {
  local build="$ROOT/build" xz=6 out="$BUNDLE_DIR" make=1
  while [ $# -gt 0 ]; do
    case "$1" in
      --build) build=$(cd "$2" && pwd); shift 2 ;;
      --out) out=$2; shift 2 ;;
      --xz) xz=$2; shift 2 ;;
      --no-build) make=0; shift ;;
      *) die "pack: unknown option '$1'" ;;
    esac
  done
  [ -f "$build/CMakeCache.txt" ] || die "no build at $build: run ./scripts/setup.sh first (it builds the CUDA backend where nvcc is installed)"
  [ -e "$build/tests/test_conv_cuda" ] || [ "$make" = 1 ] ||
    die "$build has no CUDA test programs: is it a CUDA build? (install the CUDA toolkit, docs/install.md, and rerun ./scripts/setup.sh)"
  [ "$make" = 1 ] && cmake --build "$build" -j"$(nproc)"
  [ -e "$build/tests/test_conv_cuda" ] ||
    die "$build is not a CUDA build: install the CUDA toolkit (docs/install.md) and rerun ./scripts/setup.sh"
  mkdir -p "$out"
  /usr/bin/python3 "$ROOT/scripts/gpu_bundle.py" "$build" "$ROOT" "$out" "$xz"
}

# --- run ------------------------------------------------------------------------------------

# The directory holding a CUDA library there: the CUDA image's toolkit, the loader's cache, or
# the NVIDIA wheels of its Python (cuDNN and NCCL often come only with PyTorch there).
find_cuda_lib() {
  local so=$1 d
  for d in ${CUDA_HOME:-/usr/local/cuda}/lib64 ${CUDA_HOME:-/usr/local/cuda}/lib \
           ${CUDA_HOME:-/usr/local/cuda}/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu /usr/lib64; do
    [ -e "$d/$so" ] && { echo "$d"; return; }
  done
  d=$(ldconfig -p 2>/dev/null | awk -v so="$so" '$1 == so { print $NF; exit }')
  [ -n "$d" ] && { dirname "$d"; return; }
  if command -v python3 >/dev/null; then
    d=$(python3 - "$so" 2>/dev/null <<'EOF'
import glob, os, sys, site
for base in site.getsitepackages() + [site.getusersitepackages()]:
    for hit in glob.glob(os.path.join(base, "nvidia", "**", sys.argv[1]), recursive=True):
        print(os.path.dirname(hit)); sys.exit()
EOF
)
    [ -n "$d" ] && { echo "$d"; return; }
  fi
  d=$(find /usr /opt -name "$so" -print -quit 2>/dev/null || true)
  [ -n "$d" ] && dirname "$d"
  return 0
}

STEPS=()
step_result() { STEPS+=("$(printf '%-6s %5ss  %s' "$1" "$2" "$3")"); echo "gpu-check: [$1] $3 (${2} s)"; }

# run_step NAME SECONDS_NEEDED LOGFILE COMMAND...: runs COMMAND (output to LOGFILE and the
# log) unless less than SECONDS_NEEDED of the budget is left; a dry run names it only.
run_step() {
  local name=$1 need=$2 log=$3; shift 3
  local left=$((DEADLINE - $(date +%s)))
  echo; echo "==== $name: $*"
  if [ "$DRY" = 1 ]; then step_result SKIP 0 "$name (dry run: needs a GPU)"; return 0; fi
  if [ "$left" -lt "$need" ]; then step_result SKIP 0 "$name (only ${left} s of the budget left, needs ~${need} s)"; return 0; fi
  local t0 rc=0
  t0=$(date +%s)
  timeout --kill-after=10 "$left" "$@" > >(tee "$log") 2>&1 || rc=$?
  local dt=$(($(date +%s) - t0))
  if [ $rc -eq 0 ]; then step_result PASS $dt "$name"; else step_result FAIL $dt "$name (exit $rc)"; FAILED=1; fi
}

# cpu_step NAME COMMAND...: a step the dry run runs too (no GPU needed).
cpu_step() {
  local name=$1; shift
  local t0 rc=0
  echo; echo "==== $name: $*"
  t0=$(date +%s)
  "$@" || rc=$?
  local dt=$(($(date +%s) - t0))
  if [ $rc -eq 0 ]; then step_result PASS $dt "$name"; else step_result FAIL $dt "$name (exit $rc)"; FAILED=1; fi
}

check_libraries() {
  local bad=0 f
  while IFS= read -r f; do
    if ldd "$f" 2>&1 | grep -E "not found|version .* not found"; then
      echo "  ^ in $f"; bad=1
    fi
  done < <(find "$WORK/build" "$WORK/root/usr/bin" "$WORK/root/usr/lib" -type f \( -perm -u+x -o -name '*.so*' \) \
             -exec sh -c 'head -c4 "$1" | grep -q ELF' _ {} \; -print)
  [ $bad = 0 ] && echo "every program and plugin finds its libraries"
  return $bad
}

cpu_training() {
  local data="$WORK/cpu-data"
  "$WORK/build/examples/tools/halo-data" generate --format cosmoflow-mlperf --out "$data/train" --samples 16 \
    --size 16 --seed 3 >/dev/null &&
    "$WORK/build/examples/tools/halo-data" generate --format cosmoflow-mlperf --out "$data/validation" --samples 8 \
      --size 16 --seed 4 >/dev/null &&
    "$MPIEXEC" -n 2 "$WORK/build/examples/cosmoflow/halo-cosmoflow" training.device=cpu training.epochs=1 \
      data.train="$data/train" data.validation="$data/validation" model.input_size=16 model.conv_layers=4 \
      model.base_filters=8 model.dense=[32,16] data.batch_size=4 checkpoint.path= output.progress_style=plain \
      training.target_mae=0
}

record_machine() {
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)   host: $(hostname)   kernel: $(uname -r)"
  echo "bundle: commit $COMMIT, packed $PACKED, CUDA architectures $CUDA_ARCHITECTURES, Open MPI $OPENMPI"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=index,name,driver_version,memory.total,compute_cap,pci.bus_id --format=csv || true
  else
    echo "nvidia-smi: not installed"
  fi
  command -v nvcc >/dev/null && nvcc --version | tail -2 || echo "nvcc: not installed"
  local so
  for so in $CUDA_SONAMES; do echo "$so -> $(readlink -f "$(find_cuda_lib "$so")/$so" 2>/dev/null || echo missing)"; done
  command -v python3 >/dev/null && python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(), "gpu", torch.cuda.is_available())' 2>/dev/null || echo "torch: not importable"
  command -v cmake >/dev/null && cmake --version | head -1 || echo "cmake: not installed"
}

run() {
  DRY=0
  local out="$ROOT/out/gpu-check" budget=540 bundle="$BUNDLE_DIR"
  while [ $# -gt 0 ]; do
    case "$1" in
      --dry-run) DRY=1; shift ;;
      --bundle) bundle=$2; shift 2 ;;
      --out) out=$2; shift 2 ;;
      --budget) budget=$2; shift 2 ;;
      *) die "run: unknown option '$1'" ;;
    esac
  done
  DEADLINE=$(($(date +%s) + budget))
  FAILED=0
  local archive
  archive=$(ls "$bundle"/halo-gpu-bundle.tar* 2>/dev/null | head -1 || true)
  [ -n "$archive" ] || die "no bundle in $bundle: run scripts/gpu-check.sh pack on the CPU machine and carry .gpu-bundle"
  mkdir -p "$out"
  out=$(cd "$out" && pwd)
  exec > >(tee "$out/gpu-check.log") 2>&1

  WORK=${HALO_GPU_WORK:-/tmp/halo-gpu-check}
  rm -rf "$WORK"; mkdir -p "$WORK"
  tar xf "$archive" -C "$WORK"
  # shellcheck disable=SC1091
  . "$WORK/manifest.env"

  # Open MPI and PMIx from the bundle: each directory they were built with, moved.
  local R="$WORK/root" A=lib/x86_64-linux-gnu
  export OPAL_PREFIX="$R/usr" OPAL_EXEC_PREFIX="$R/usr" OPAL_BINDIR="$R/usr/bin" OPAL_SBINDIR="$R/usr/sbin"
  export OPAL_LIBEXECDIR="$R/usr/libexec" OPAL_DATAROOTDIR="$R/usr/share" OPAL_DATADIR="$R/usr/share"
  export OPAL_SYSCONFDIR="$R/etc/openmpi" OPAL_LIBDIR="$R/usr/$A/openmpi/lib"
  export OPAL_PKGLIBDIR="$R/usr/$A/openmpi/lib/openmpi3" OPAL_PKGDATADIR="$R/usr/share/openmpi"
  export OPAL_INCLUDEDIR="$R/usr/$A/openmpi/include"
  local P="$R/usr/$A/pmix2"
  export PMIX_PREFIX="$P" PMIX_EXEC_PREFIX="$P" PMIX_BINDIR="$P/bin" PMIX_LIBDIR="$P/lib" PMIX_PKGLIBDIR="$P/lib/pmix"
  export PMIX_DATAROOTDIR="$P/share" PMIX_DATADIR="$P/share" PMIX_PKGDATADIR="$P/share/pmix" PMIX_SYSCONFDIR="$P/share"
  # (its pmix-mca-params.conf names the packaged plugin folder: the variable wins over the file)
  export PMIX_MCA_mca_base_component_path="$P/lib/pmix"
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
  # One node: mpiexec starts the ranks itself, but insists on finding a remote shell (a bare
  # image has no ssh); `false` is found and never called.
  export OMPI_MCA_plm_rsh_agent=false
  local packed_mpiexec=$MPIEXEC
  MPIEXEC="$R/usr/bin/mpiexec.openmpi"
  local cuda_dirs="" so d
  for so in $CUDA_SONAMES; do
    d=$(find_cuda_lib "$so")
    [ -n "$d" ] || echo "gpu-check: $so is not on this machine (looked in CUDA_HOME, /usr/local/cuda, ldconfig, Python's nvidia wheels, /usr, /opt)"
    [ -n "$d" ] && case ":$cuda_dirs:" in *":$d:"*) ;; *) cuda_dirs="$cuda_dirs:$d" ;; esac
  done
  export LD_LIBRARY_PATH="$WORK/lib:$R/usr/$A/openmpi/lib:$R/usr/$A:$P/lib$cuda_dirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  # libstdc++ and libgcc_s of the build only where the machine's are older than the programs need.
  if ldd "$WORK/build/examples/cosmoflow/halo-cosmoflow" 2>&1 | grep -q "GLIBCXX.*not found\|GCC_.*not found\|libstdc++.so.6 => not found"; then
    echo "gpu-check: this machine's libstdc++ is older than the build's: using the bundled one"
    export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$WORK/fallback"
  fi

  echo "==== machine"
  record_machine

  # The tests' paths, as the build wrote them, pointed at this machine's.
  local python cmake
  python=$(command -v python3 || echo "$PYTHON")
  cmake=$(command -v cmake || echo "$CMAKE")
  find "$WORK/build" -name CTestTestfile.cmake -print0 | xargs -0 sed -i \
    -e "s#$BUILD_DIR#$WORK/build#g" -e "s#$SOURCE_DIR#$ROOT#g" \
    -e "s#$packed_mpiexec\\([\"|]\\)#$MPIEXEC\\1#g" -e "s#$PYTHON\\([\";|]\\)#$python\\1#g" \
    -e "s#\"$CMAKE\"#\"$cmake\"#g"
  [ -n "$(command -v ctest)" ] || echo "gpu-check: no ctest on this machine: the test steps cannot run"

  cpu_step "every program finds its libraries" check_libraries
  cpu_step "mpiexec from the bundle starts 2 ranks" "$MPIEXEC" -n 2 sh -c 'echo "rank $OMPI_COMM_WORLD_RANK of $OMPI_COMM_WORLD_SIZE"'
  if command -v ctest >/dev/null; then
    cpu_step "ctest lists the $GPU_TESTS gpu tests" sh -c "cd '$WORK/build' && ctest -N -L '^gpu\$' | tee /dev/stderr | grep -q 'Total Tests: $GPU_TESTS\$'"
    # The fixtures the gpu tests require (ctest -L gpu adds them; -R alone selects them).
    cpu_step "the gpu tests' data sets are generated" sh -c \
      "cd '$WORK/build' && ctest -R '^(cosmoflow|deepcam)_data\$' --output-on-failure | tee /dev/stderr | grep -q '100% tests passed, 0 tests failed out of 2'"
  fi
  cpu_step "2 ranks train CosmoFlow on the CPU (MPI, HDF5, loaders from the bundle)" cpu_training
  # Loads with the CUDA libraries found above; exits 77 (skipped) where no GPU is visible.
  cpu_step "a GPU test program loads its CUDA libraries" sh -c \
    "'$WORK/build/tests/test_device_memory_cuda' --list-tests >/dev/null; r=\$?; [ \$r = 0 ] || [ \$r = 77 ]"

  if [ "$DRY" = 0 ] && ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu-check: nvidia-smi sees no GPU here: the GPU steps would only skip; use --dry-run on a machine without one"
    FAILED=1
  fi
  local logs="$WORK/logs"
  mkdir -p "$logs"
  run_step "ctest -L gpu" 300 "$logs/ctest-gpu.log" \
    sh -c "cd '$WORK/build' && ctest -L '^gpu\$' --output-on-failure --timeout 300 --output-junit '$logs/ctest-gpu.xml'"
  # The CosmoFlow driver on the GPU (one rank, bf16), its steps replaying CUDA graphs: the
  # loaders, the batch copies, the capture and the optimizer after the replays, end to end, on
  # cpu_training's data.
  run_step "halo-cosmoflow trains on the GPU with training.cuda_graph" 40 "$logs/cosmoflow-gpu-graph.log" \
    "$WORK/build/examples/cosmoflow/halo-cosmoflow" training.device=cuda training.cuda_graph=true \
    training.precision=bf16 training.epochs=2 data.train="$WORK/cpu-data/train" \
    data.validation="$WORK/cpu-data/validation" model.input_size=16 model.conv_layers=4 model.base_filters=8 \
    model.dense=[32,16] data.batch_size=4 checkpoint.path= output.progress_style=plain training.target_mae=0
  local b="$WORK/build/examples"
  run_step "halo-bench-cosmoflow --device cuda f32 batch 4" 45 "$logs/bench-cosmoflow-f32-b4.log" \
    "$b/halo-bench-cosmoflow" --device cuda --precision f32 --batch 4 --layers
  run_step "halo-bench-cosmoflow --device cuda bf16 batch 4" 45 "$logs/bench-cosmoflow-bf16-b4.log" \
    "$b/halo-bench-cosmoflow" --device cuda --precision bf16 --batch 4 --layers --graph 1
  run_step "halo-bench-cosmoflow --device cuda bf16 batch 1" 30 "$logs/bench-cosmoflow-bf16-b1.log" \
    "$b/halo-bench-cosmoflow" --device cuda --precision bf16 --batch 1 --graph 1
  run_step "halo-bench-conv --device cuda" 60 "$logs/bench-conv-cuda.log" "$b/halo-bench-conv" --device cuda 4
  run_step "PyTorch eager step, same shapes" 60 "$logs/pytorch-cosmoflow.log" \
    env -u LD_LIBRARY_PATH python3 "$ROOT/examples/bench/pytorch_cosmoflow_step.py" --batch 4 --precision f32 bf16
  run_step "halo-bench-deepcam --device cuda bf16 batch 2" 60 "$logs/bench-deepcam-bf16-b2.log" \
    "$b/halo-bench-deepcam" --device cuda --precision bf16 --batch 2 --layers --graph 1
  run_step "halo-bench-deepcam --device cuda bf16 batch 1" 45 "$logs/bench-deepcam-bf16-b1.log" \
    "$b/halo-bench-deepcam" --device cuda --precision bf16 --batch 1 --graph 1
  run_step "PyTorch eager DeepCAM step, same shapes" 90 "$logs/pytorch-deepcam.log" \
    env -u LD_LIBRARY_PATH python3 "$ROOT/examples/bench/pytorch_deepcam_step.py" --batch 2 --precision f32 bf16

  cp "$WORK/build/Testing/Temporary/"*.log "$logs/" 2>/dev/null || true
  tar czf "$out/results.tar.gz" -C "$WORK" logs
  {
    echo "Halo GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ), bundle $COMMIT$([ "$DRY" = 1 ] && echo ", DRY RUN")"
    printf '%s\n' "${STEPS[@]}"
    # Halo against PyTorch on this GPU, from this run's logs (the last line; docs/results/).
    env -u LD_LIBRARY_PATH python3 "$ROOT/examples/bench/gpu_summary.py" "$logs" || echo "gpu_summary.py failed"
  } > "$out/summary.txt"
  echo; cat "$out/summary.txt"
  echo "gpu-check: logs in $out (gpu-check.log, summary.txt, results.tar.gz)"
  return $FAILED
}

rehearse() {
  [ "$(id -u)" = 0 ] || die "rehearse needs root (chroot and mounts)"
  local base=/var/cache/halo/fresh-bookworm root rc=0
  [ -d "$base" ] || die "no bare Debian 12 root at $base: run ./scripts/check-fresh-machine.sh once (it makes it)"
  [ -d /usr/local/cuda ] || die "rehearse binds the CUDA toolkit from /usr/local/cuda, which is not here"
  pack --out "$ROOT/out/gpu-rehearsal-bundle" --xz 0 "$@"
  root=$(mktemp -d /tmp/halo-gpu-rehearse.XXXXXX)
  # shellcheck disable=SC2064
  trap "umount -R '$root/dev' '$root/sys' 2>/dev/null; umount '$root/proc' '$root/usr/local/cuda' '$root/repo' 2>/dev/null; rm -rf --one-file-system '$root'" EXIT
  cp -a "$base/." "$root/"
  mkdir -p "$root/usr/local/cuda" "$root/repo"
  mount --bind -o ro /usr/local/cuda "$root/usr/local/cuda"
  mount --rbind /dev "$root/dev"; mount -t proc proc "$root/proc"; mount --rbind /sys "$root/sys"
  mount --bind "$ROOT" "$root/repo"
  chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    /repo/scripts/gpu-check.sh run --dry-run --bundle /repo/out/gpu-rehearsal-bundle --out /repo/out/gpu-rehearsal || rc=$?
  echo "gpu-check: rehearsal in a bare Debian 12 root ended $rc; logs in out/gpu-rehearsal"
  return $rc
}

case "${1:-}" in
  pack) shift; pack "$@" ;;
  run) shift; run "$@" ;;
  rehearse) shift; rehearse "$@" ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
esac
