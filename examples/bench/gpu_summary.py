#!/usr/bin/env python3
"""The last lines of a GPU device run (scripts/gpu-check.sh run): Halo against PyTorch eager
on the same GPU, from the logs of that one run.

    gpu_summary.py LOGDIR

reads bench-cosmoflow-bf16-b4.log, bench-cosmoflow-bf16-b1.log, bench-deepcam-bf16-b2.log
(halo-bench-* --device cuda: one line per eager step timing, one more per CUDA-graph timing;
the faster counts) and pytorch-cosmoflow.log, pytorch-deepcam.log (the twins' bf16 lines),
and prints

    cosmoflow_bf16_b4_vs_pytorch=<x> cosmoflow_bf16_b1_samples_per_s=<y> deepcam_bf16_vs_pytorch=<z>

with `nan` for a figure whose log is missing or holds no timing (a step that failed).
"""
import math
import os
import re
import sys

HALO = re.compile(r"^(\S+) bf16 batch (\d+)\b.*= ([0-9.]+) samples/s", re.M)
TWIN = re.compile(r"^(\S+) bf16\s+batch\s+(\d+):\s+([0-9.]+) samples/s", re.M)


def best(path, pattern):
    try:
        text = open(path).read()
    except OSError:
        return math.nan
    rates = [float(m.group(3)) for m in pattern.finditer(text)]
    return max(rates) if rates else math.nan


def summary(logdir):
    at = lambda name: os.path.join(logdir, name)
    cf4 = best(at("bench-cosmoflow-bf16-b4.log"), HALO)
    cf1 = best(at("bench-cosmoflow-bf16-b1.log"), HALO)
    dc2 = best(at("bench-deepcam-bf16-b2.log"), HALO)
    pt_cf = best(at("pytorch-cosmoflow.log"), TWIN)
    pt_dc = best(at("pytorch-deepcam.log"), TWIN)
    return (f"cosmoflow_bf16_b4_vs_pytorch={cf4 / pt_cf:.3f} cosmoflow_bf16_b1_samples_per_s={cf1:.1f} "
            f"deepcam_bf16_vs_pytorch={dc2 / pt_dc:.3f}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(summary(sys.argv[1]))
