#!/usr/bin/env bash
# The scaling model against the namespace testbed, end to end and repeatable (docs/scaling.md,
# "Validation of the model"): for each link rate, build 2 hosts, calibrate a machine
# description from halo-bench-allreduce, measure RUNS CosmoFlow training runs on 1 and 2 ranks
# and project each; then 4 hosts at the first rate, projected with the 2-host calibration
# (beyond the calibrated size). Prints one Markdown row per run and a summary; the last line is
#
#   validation: runs=<n> within_15pct=<k> worst_error_pct=<e>
# and the exit status is 1 when a run is off by more than 15%.
#
#   examples/scaling/netns-validate.sh [--runs 5] [--rates 1gbit,2gbit] [--no-four-hosts]
#                                      [--size 32] [--batch 4] [--out netns-validation]
#
# Root (network namespaces, tc); halo-scaling and halo-bench-allreduce on PATH. Run it on an
# otherwise idle machine: the hosts share its cores. The projection takes its compute from the
# record measured at the same rank count (the hosts of this testbed share cores, so one rank's
# compute is not a many-rank run's), so what is compared is the model's network and overlap;
# the table also gives the projection from the 1-rank record.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
runs=5 rates=1gbit,2gbit four=1 size=32 batch=4 out=netns-validation
usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
need_value() {  # called with "$@": the option in $1 must be followed by a value
  [ $# -ge 2 ] && [ -n "$2" ] || { echo "netns-validate: $1 needs a value" >&2; usage 2 >&2; }
}
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) need_value "$@"; runs=$2; shift 2 ;;
    --rates) need_value "$@"; rates=$2; shift 2 ;;
    --no-four-hosts) four=0; shift ;;
    --size) need_value "$@"; size=$2; shift 2 ;;
    --batch) need_value "$@"; batch=$2; shift 2 ;;
    --out) need_value "$@"; out=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "netns-validate: unknown option $1" >&2; usage 2 >&2 ;;
  esac
done
for v in runs size batch; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "netns-validate: --$v must be a positive integer, got '${!v}'" >&2; exit 2; }
done
[ "$(id -u)" -eq 0 ] || { echo "netns-validate: needs root (network namespaces, tc)" >&2; exit 1; }
for p in halo-scaling halo-bench-allreduce; do
  command -v "$p" >/dev/null || { echo "netns-validate: $p is not on PATH" >&2; exit 1; }
done
testbed="$here/netns-testbed.sh"
mkdir -p "$out"
export OMP_NUM_THREADS=1
trap '"$testbed" down >/dev/null 2>&1 || true' EXIT

# measure HOSTS DIR RUN: one `halo-scaling run` over HOSTS hosts (one rank each), logged.
measure() {
  local hosts=$1 dir=$2 i=$3 rec="$2/h$1-run$3.jsonl"
  rm -f "$rec"
  if ! "$testbed" run 1 halo-scaling run --size "$size" --batch "$batch" --warmup 2 --steps 8 \
      --ranks-per-node 1 --out "$rec" > "$dir/h$hosts-run$i.log" 2>&1; then
    echo "netns-validate: run $i on $hosts hosts failed; its output: $dir/h$hosts-run$i.log" >&2
    exit 1
  fi
  echo "netns-validate: $(basename "$dir"), $hosts hosts, run $i/$runs: $(grep '^scaling: ranks=' "$dir/h$hosts-run$i.log")"
  local name ranks
  for name in matched one-rank; do
    ranks=$hosts; [ "$name" = one-rank ] && ranks=1
    rm -f "$dir/h$hosts-run$i.$name.jsonl"
    halo-scaling project --profile "$rec" --machine "$dir/machine.yaml" --nodes "$hosts" --ranks "$ranks" \
        --json "$dir/h$hosts-run$i.$name.jsonl" > /dev/null ||
      { echo "netns-validate: projecting $rec (profile at $ranks rank(s)) failed" >&2; exit 1; }
  done
}

first=1
for rate in ${rates//,/ }; do
  dir="$out/$rate"
  mkdir -p "$dir"
  rm -f "$dir"/*.jsonl
  "$testbed" up 2 "$rate"
  "$testbed" run 1 halo-bench-allreduce --max-mib 64 --steps 0 --median > "$dir/bench.txt" 2> "$dir/bench.log" ||
    { echo "netns-validate: the allreduce benchmark at $rate failed; its output: $dir/bench.txt, $dir/bench.log" >&2; exit 1; }
  halo-scaling calibrate "$dir/bench.txt" --name "namespace testbed, $rate" > "$dir/machine.yaml" ||
    { echo "netns-validate: calibrating from $dir/bench.txt failed" >&2; exit 1; }
  echo "netns-validate: $rate: $(head -1 "$dir/machine.yaml")"
  for ((i = 1; i <= runs; i++)); do measure 2 "$dir" "$i"; done
  if [ "$first" = 1 ] && [ "$four" = 1 ]; then
    "$testbed" up 4 "$rate"
    for ((i = 1; i <= runs; i++)); do measure 4 "$dir" "$i"; done
  fi
  first=0
done
"$testbed" down >/dev/null

python3 - "$out" "$rates" <<'EOF'
import glob, json, os, sys
out, rates = sys.argv[1], sys.argv[2].split(",")
def rows(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]
print("| link | hosts | run | measured step | projected (same-rank compute) | error | projected (1-rank compute) | error |")
print("|---|---|---|---|---|---|---|---|")
errors = []
for rate in rates:
    for hosts in (2, 4):
        recs = [r for r in glob.glob(f"{out}/{rate}/h{hosts}-run*.jsonl")
                if not r.endswith(("matched.jsonl", "one-rank.jsonl"))]
        for rec in sorted(recs, key=lambda r: int(r.rsplit("-run", 1)[1][:-len(".jsonl")])):
            base = rec[:-len(".jsonl")]
            measured = next(r["step_s"] for r in rows(rec) if r["ranks"] == hosts)
            matched = next(r["step_s"] for r in rows(base + ".matched.jsonl") if r["nodes"] == hosts)
            one = next(r["step_s"] for r in rows(base + ".one-rank.jsonl") if r["nodes"] == hosts)
            e, e1 = 100 * (matched / measured - 1), 100 * (one / measured - 1)
            errors.append(e)
            run = os.path.basename(base).split("-run")[1]
            print(f"| {rate} | {hosts} | {run} | {measured:.3f} s | {matched:.3f} s | {e:+.0f}% | {one:.3f} s | {e1:+.0f}% |")
within = sum(abs(e) <= 15 for e in errors)
worst = max(errors, key=abs) if errors else float("nan")
print(f"\nvalidation: runs={len(errors)} within_15pct={within} worst_error_pct={worst:+.1f}")
sys.exit(0 if errors and within == len(errors) else 1)
EOF
