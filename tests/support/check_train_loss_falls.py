"""Fails unless the training loss of the last epoch in a metrics file is below `factor` times
that of the first: usage check_train_loss_falls.py metrics.jsonl [factor]."""
import json
import sys

records = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
factor = float(sys.argv[2]) if len(sys.argv) > 2 else 0.9
if len(records) < 2:
    sys.exit(f"FAIL: {len(records)} epoch record(s) in {sys.argv[1]}; need at least 2")
first, last = records[0]["train_loss"], records[-1]["train_loss"]
print(f"train loss: epoch 1 {first:.4f}, epoch {records[-1]['epoch']} {last:.4f}")
if not last < factor * first:
    sys.exit(f"FAIL: train loss {last:.4f} is not below {factor} x {first:.4f}")
