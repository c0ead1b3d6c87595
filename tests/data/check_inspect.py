#!/usr/bin/python3
"""Checks `halo-data inspect --json` against numpy's statistics of the same files.

Usage: check_inspect.py HALO_DATA FIXTURE_DIR. The files are read with h5py and every
layout's transform and axis order is applied in numpy, independently of Halo's code.
"""
import json
import os
import subprocess
import sys

import h5py
import numpy as np


def expected(path, kind):
    with h5py.File(path, "r") as f:
        if kind == "mlperf":
            x = np.log1p(f["x"][...].astype(np.float64))[None]           # (1,D,H,W,C)
            xs, ys, mask = x.reshape(-1, 4), f["y"][...][None], None
        elif kind == "lbann":
            x = f["full"][...].astype(np.float64)                          # (C,D,H,W)
            xs, ys, mask = x.reshape(4, -1).T, f["unitPar"][...][None], None
        elif kind == "raw":
            x = np.log1p(f["full"][...].astype(np.float64))
            xs, ys, mask = x.reshape(-1, 4), np.repeat(f["unitPar"][...][None], 8, axis=0), None
        elif kind == "deepcam":
            with h5py.File(os.path.join(os.path.dirname(path), "stats.h5"), "r") as s:
                lo, hi = s["climate/minval"][...].astype(np.float64), s["climate/maxval"][...].astype(np.float64)
            x = (f["climate/data"][...].astype(np.float64) - lo) / (hi - lo)
            xs, ys, mask = x.reshape(-1, x.shape[-1]), None, f["climate/labels_0"][...]
        elif kind == "packed":
            x = f["data"][...].astype(np.float64)
            xs, ys, mask = x.reshape(-1, x.shape[-1]), f["label"][...], None
    return xs, ys, mask


def close(a, b, what, tol=1e-5):
    if not np.allclose(a, b, rtol=tol, atol=tol):
        raise SystemExit("MISMATCH %s: halo-data %s, numpy %s" % (what, a, b))


def main(tool, root):
    cases = [("mlperf", "mlperf/cosmo_1.h5"), ("lbann", "lbann/univ_1.h5"), ("raw", "raw/universe_0.h5"),
             ("deepcam", "deepcam/data-1.h5"), ("packed", "packed/shard-0.h5")]
    for kind, rel in cases:
        path = os.path.join(root, rel)
        args = [tool, "inspect", path, "--json"] + (["--subvolume", "8"] if kind == "raw" else [])
        report = json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)[0]
        xs, ys, mask = expected(path, kind)
        ch = report["channels"]
        if len(ch) != xs.shape[1]:
            raise SystemExit("MISMATCH %s: %d channels, numpy %d" % (rel, len(ch), xs.shape[1]))
        for key, fn in (("min", np.min), ("max", np.max), ("mean", np.mean), ("std", np.std)):
            close(np.array([c[key] for c in ch]), fn(xs, axis=0), "%s channel %s" % (rel, key))
        if mask is not None:
            fr = np.array([np.mean(mask == k) for k in range(3)])
            close(np.array(report["class_fractions"]), fr, rel + " class fractions")
        else:
            close(np.array([c["mean"] for c in report["label_components"]]), ys.mean(axis=0), rel + " label means")
        n = xs.shape[0] and (8 if kind == "raw" else (ys.shape[0] if ys is not None else 1))
        if report["samples"] != n:
            raise SystemExit("MISMATCH %s: %d samples, expected %d" % (rel, report["samples"], n))
        print("ok", rel, report["format"])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
