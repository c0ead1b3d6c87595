"""Asserts that bf16 runs' final metric is no worse than the f32 runs' (same seeds, data and
schedule) by more than a tolerance:
    check_precision_match.py F32.jsonl[,F32.jsonl...] BF16.jsonl[,BF16.jsonl...] METRIC TOLERANCE lower|higher
(`lower`: smaller is better, as for an MAE; `higher`: larger is better, as for an IoU).
Several comma-separated runs (one per seed, in the same order on both sides) compare their
means: where one run's outcome depends on its trajectory more than on the arithmetic (DeepCAM:
the same f32 run on 1 or 2 threads ends up to 0.03 IoU apart), only the mean over seeds says
what the precision does.
One-sided on purpose: at the tests' small sizes two f32 runs that differ only in the seed end
0.01-0.03 apart (CosmoFlow 16^3, 16 epochs: 0.283-0.316 over seeds 0-3), so a bf16 run ending
better than f32 by more than the tolerance is the run-to-run spread, not a defect; ending
worse by more than it is what mixed precision must not do."""
import json
import sys


def last(path, key):
    records = [json.loads(line) for line in open(path) if line.strip()]
    if not records or key not in records[-1]:
        sys.exit(f"FAIL: {path} has no final '{key}'")
    return records[-1][key]


f32_paths, bf16_paths = sys.argv[1].split(","), sys.argv[2].split(",")
key, tol, better = sys.argv[3], float(sys.argv[4]), sys.argv[5]
if len(f32_paths) != len(bf16_paths):
    sys.exit(f"FAIL: {len(f32_paths)} f32 runs against {len(bf16_paths)} bf16 runs")
f32 = [last(p, key) for p in f32_paths]
bf16 = [last(p, key) for p in bf16_paths]
for i, (a, b) in enumerate(zip(f32, bf16)):
    print(f"run {i}: final {key} f32 {a:.4f}, bf16 {b:.4f}")
f32_mean, bf16_mean = sum(f32) / len(f32), sum(bf16) / len(bf16)
worse_by = bf16_mean - f32_mean if better == "lower" else f32_mean - bf16_mean
print(f"final {key}{' (mean over %d runs)' % len(f32) if len(f32) > 1 else ''}: f32 {f32_mean:.4f}, "
      f"bf16 {bf16_mean:.4f} (bf16 worse by {worse_by:+.4f}; allowed {tol})")
if worse_by > tol:
    sys.exit(f"FAIL: bf16's final {key} is worse than f32's by more than {tol}")
