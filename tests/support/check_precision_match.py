"""Asserts that a bf16 run's final metric is no worse than the f32 run's (same seed, data and
schedule) by more than a tolerance:
    check_precision_match.py F32.jsonl BF16.jsonl METRIC TOLERANCE lower|higher
(`lower`: smaller is better, as for an MAE; `higher`: larger is better, as for an IoU).
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


f32_path, bf16_path, key, tol, better = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5]
f32, bf16 = last(f32_path, key), last(bf16_path, key)
worse_by = bf16 - f32 if better == "lower" else f32 - bf16
print(f"final {key}: f32 {f32:.4f}, bf16 {bf16:.4f} (bf16 worse by {worse_by:+.4f}; allowed {tol})")
if worse_by > tol:
    sys.exit(f"FAIL: bf16's final {key} is worse than f32's by more than {tol}")
