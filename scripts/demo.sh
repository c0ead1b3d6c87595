#!/usr/bin/env bash
# The main job: builds Halo (scripts/setup.sh), generates a small CosmoFlow data set if it
# is not there yet, trains the MLPerf HPC CosmoFlow model on 2 MPI ranks for a few epochs
# with progress shown, and prints the final validation MAE. A few minutes on 2 cores.
#
# Extra arguments go to halo-cosmoflow as configuration overrides, e.g.
#   ./scripts/demo.sh training.epochs=20
# Environment: BUILD_DIR (default ./build), HALO_DEMO_RANKS (default 2),
# HALO_DEMO_SAMPLES (training volumes, default 512).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$here/scripts/setup.sh"
bin=${BUILD_DIR:-$here/build}/examples
ranks=${HALO_DEMO_RANKS:-2}
samples=${HALO_DEMO_SAMPLES:-512}
cd "$here"

# 32^3 volumes (the MLPerf data are 128^3): the same model, 64x less work per sample.
data=data/cosmoflow
if [ ! -f "$data/train/cosmo-00000.h5" ] || [ ! -f "$data/validation/cosmo-00000.h5" ]; then
  echo "halo: generating $samples training and 64 validation volumes of 32^3 in $data"
  rm -rf "$data/train" "$data/validation"
  "$bin/tools/halo-data" generate --format cosmoflow-mlperf --out "$data/train" --samples "$samples" --size 32 --seed 1
  "$bin/tools/halo-data" generate --format cosmoflow-mlperf --out "$data/validation" --samples 64 --size 32 --seed 2
fi

# Open MPI refuses to run as root, and more ranks than cores, unless told so.
launcher=(mpiexec -n "$ranks")
if mpiexec --version 2>/dev/null | grep -q "Open MPI\|OpenRTE"; then
  launcher+=(--oversubscribe)
  [ "$(id -u)" -eq 0 ] && launcher+=(--allow-run-as-root)
fi
# One thread per rank unless the caller chose otherwise: ranks x threads = cores.
cores=$(nproc)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(( cores / ranks > 0 ? cores / ranks : 1 ))}
# mpiexec gives the ranks a pseudo-terminal even when our output is a file or a pipe, so
# the progress style is decided here, where the real output is known.
style=plain
[ -t 1 ] && style=terminal

"${launcher[@]}" "$bin/cosmoflow/halo-cosmoflow" --config examples/cosmoflow/cosmoflow.yaml \
  output.progress_style=$style "$@"
echo "halo: per-epoch metrics in runs/cosmoflow/metrics.jsonl, checkpoint in runs/cosmoflow/checkpoint.h5"
