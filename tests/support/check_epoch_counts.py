"""Asserts the step and sample counts of every epoch in a halo metrics file:
check_epoch_counts.py METRICS STEPS_PER_EPOCH TRAIN_SAMPLES VAL_SAMPLES
(train samples per epoch, padding repeats included; validation samples counted, which must
be every real sample exactly once)."""
import json
import sys

records = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
spe, train, val = (int(a) for a in sys.argv[2:5])
if not records:
    sys.exit("FAIL: no epoch in the metrics file")
for r in records:
    print(f"epoch {r['epoch']}: step {r['step']}, {r['train_samples']} training samples, "
          f"{r.get('val_samples')} validation samples")
    if r["step"] != r["epoch"] * spe:
        sys.exit(f"FAIL: epoch {r['epoch']} ended at step {r['step']}, expected {r['epoch'] * spe}")
    if r["train_samples"] != train:
        sys.exit(f"FAIL: epoch {r['epoch']} trained {r['train_samples']} samples, expected {train}")
    if r.get("val_samples") != val:
        sys.exit(f"FAIL: epoch {r['epoch']} validated {r.get('val_samples')} samples, expected {val}")
