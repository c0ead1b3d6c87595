"""Asserts a checkpoint's loss scaler state shows steps skipped for overflow and a scale that
backed off from its start. Usage: check_loss_scaler.py CHECKPOINT START_SCALE"""
import sys

import h5py

with h5py.File(sys.argv[1], "r") as f:
    skipped = int(f["loss_scaler/skipped_steps"][()])
    scale = float(f["loss_scaler/scale"][()])
start = float(sys.argv[2])
print(f"loss scaler: {skipped} step(s) skipped, scale {scale:g} (started at {start:g})")
assert skipped > 0, "no step was skipped: the start scale did not overflow"
assert scale < start, "the scale did not back off"
