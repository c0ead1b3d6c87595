#!/usr/bin/python3
"""Helpers of the fault tests (tests/*/fault_*.cmake), with h5py as the independent tool:

  fault_tools.py poison FILE KIND   writes one bad value into a sample file:
        x-negative  a count of -3 in CosmoFlow's int16 `x` (log1p of it is NaN)
        y-nan       a NaN target in CosmoFlow's `y`
        deepcam-nan a NaN pixel in DeepCAM's `climate/data`
  fault_tools.py finite CKPT        every float dataset of a checkpoint is finite
  fault_tools.py metric FILE KEY MIN [MAX]   the last record's KEY lies in [MIN, MAX]
  fault_tools.py same A B           two files hold the same bytes
"""
import json
import sys

import h5py
import numpy as np


def poison(path, kind):
    with h5py.File(path, "r+") as f:
        if kind == "x-negative":
            x = f["x"]
            x[1, 2, 3, 0] = -3
        elif kind == "y-nan":
            y = f["y"][()]
            y[2] = np.nan
            f["y"][...] = y
        elif kind == "deepcam-nan":
            f["climate/data"][5, 7, 3] = np.nan
        else:
            sys.exit(f"unknown kind {kind}")


def finite(path):
    bad = []
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and obj.dtype.kind == "f" and not np.all(np.isfinite(obj[()])):
                bad.append(name)
        f.visititems(visit)
    assert not bad, f"{path}: non-finite values in {bad[:5]}"
    print(f"{path}: every float dataset is finite")


def metric(path, key, lo, hi=None):
    with open(path) as f:
        last = json.loads(f.read().splitlines()[-1])
    v = last.get(key)
    assert v is not None and v >= float(lo) and (hi is None or v <= float(hi)), f"{path}: {key} = {v}, want [{lo}, {hi}]"
    print(f"{path}: {key} = {v}")


def same(a, b):
    assert open(a, "rb").read() == open(b, "rb").read(), f"{a} and {b} differ"
    print(f"{a} is unchanged")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"poison": poison, "finite": finite, "metric": metric, "same": same}[cmd](*args)
