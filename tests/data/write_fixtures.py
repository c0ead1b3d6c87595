#!/usr/bin/python3
"""Writes small HDF5 files in every layout Halo reads, with h5py (an independent writer).

Values follow closed formulas that tests/data/test_data_h5py.cpp recomputes, so the C++
side checks element by element, axis order included. Usage: write_fixtures.py OUTDIR
"""
import os
import shutil
import sys

import h5py
import numpy as np


def cosmo_counts(i, n=8):
    d, h, w, c = np.meshgrid(np.arange(n), np.arange(n), np.arange(n), np.arange(4), indexing="ij")
    return ((d * 7 + h * 3 + w + c * 11 + i * 5) % 50).astype(np.int16)  # (D,H,W,C)


def target(i):
    return np.array([i, i + 0.5, -i, 0.25 * i], dtype=np.float32)


def deepcam_field(i, H=6, W=9, C=3):
    h, w, c = np.meshgrid(np.arange(H), np.arange(W), np.arange(C), indexing="ij")
    return (h * 1.5 - w * 0.25 + c * 10.0 + i).astype(np.float32)  # (H,W,C)


def deepcam_labels(i, H=6, W=9):
    h, w = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    return ((h + 2 * w + i) % 3).astype(np.int32)


def main(out):
    shutil.rmtree(out, ignore_errors=True)
    for d in ("mlperf", "lbann", "raw", "deepcam", "packed", "bad", "fault"):
        os.makedirs(os.path.join(out, d))
    for i in range(3):
        with h5py.File(os.path.join(out, "mlperf", "cosmo_%d.h5" % i), "w") as f:
            f["x"] = cosmo_counts(i)
            f["y"] = target(i)
    for i in range(2):
        with h5py.File(os.path.join(out, "lbann", "univ_%d.h5" % i), "w") as f:
            f["full"] = (cosmo_counts(i).transpose(3, 0, 1, 2) / 10.0).astype(np.float32)  # (C,D,H,W)
            f["unitPar"] = target(i)
    with h5py.File(os.path.join(out, "raw", "universe_0.h5"), "w") as f:
        f["full"] = cosmo_counts(0, n=16)  # cut into 8 cubes of 8^3
        f["unitPar"] = target(7)
    mins, maxs = [], []
    for i in range(2):
        with h5py.File(os.path.join(out, "deepcam", "data-%d.h5" % i), "w") as f:
            f["climate/data"] = deepcam_field(i)
            f["climate/labels_0"] = deepcam_labels(i)
    allx = np.stack([deepcam_field(i) for i in range(2)])
    with h5py.File(os.path.join(out, "deepcam", "stats.h5"), "w") as f:
        f["climate/minval"] = allx.min(axis=(0, 1, 2)).astype(np.float32)
        f["climate/maxval"] = allx.max(axis=(0, 1, 2)).astype(np.float32)
    # a packed shard of 5 samples, each a (H,W,C) = (4,6,2) uint8 image, written by h5py
    with h5py.File(os.path.join(out, "packed", "shard-0.h5"), "w") as f:
        n, k = np.meshgrid(np.arange(5), np.arange(4 * 6 * 2), indexing="ij")
        f.create_dataset("data", data=((n * 13 + k) % 200).astype(np.uint8).reshape(5, 4, 6, 2), chunks=(1, 4, 6, 2))
        f["label"] = np.stack([np.arange(5, dtype=np.float32), -np.arange(5, dtype=np.float32)], axis=1)
        f["origin/position"] = np.zeros((5, 5), dtype=np.int64)
        f.attrs["halo_format"] = "packed"
        f.attrs["axes"] = "HWC"
        f.attrs["transform"] = "none"
        f.attrs["label_kind"] = "vector"
    # bad files: a truncated copy, a file whose label dataset is misnamed, one with wrong channels
    src = os.path.join(out, "mlperf", "cosmo_0.h5")
    data = open(src, "rb").read()
    with open(os.path.join(out, "bad", "truncated.h5"), "wb") as f:
        f.write(data[: len(data) // 2])
    with h5py.File(os.path.join(out, "bad", "mislabelled.h5"), "w") as f:
        f["x"] = cosmo_counts(1)
        f["target"] = target(1)
    with h5py.File(os.path.join(out, "bad", "wrongshape.h5"), "w") as f:
        f["x"] = cosmo_counts(1)[..., :3]
        f["y"] = target(1)
    write_faults(os.path.join(out, "fault"))


def write_faults(out):
    """Sets with one bad file among good ones (tests tagged [fault] and check_verify_faults.py):
    NaN in x (float32 counts), a negative count (int16), a NaN target, a DeepCAM NaN pixel,
    and files whose shapes differ from the format and from the first file."""
    def cosmo_set(name, n, dtype, poison=None):
        d = os.path.join(out, name)
        os.makedirs(d)
        for i in range(n):
            x, y = cosmo_counts(i).astype(dtype), target(i)
            if poison and poison[0] == i:
                poison[1](x, y)
            with h5py.File(os.path.join(d, "cosmo_%d.h5" % i), "w") as f:
                f["x"] = x
                f["y"] = y

    def nan_x(x, y):
        x[3, 2, 1, 2] = np.nan

    def negative(x, y):
        x[5, 0, 7, 1] = -3  # log1p(-3) is NaN

    def nan_y(x, y):
        y[1] = np.nan

    cosmo_set("cosmo_nan_x", 4, np.float32, (2, nan_x))
    cosmo_set("cosmo_negative", 4, np.int16, (1, negative))
    cosmo_set("cosmo_nan_y", 4, np.int16, (3, nan_y))
    d = os.path.join(out, "deepcam_nan")
    os.makedirs(d)
    for i in range(3):
        x = deepcam_field(i)
        if i == 1:
            x[4, 2, 1] = np.nan
        with h5py.File(os.path.join(d, "data-%d.h5" % i), "w") as f:
            f["climate/data"] = x
            f["climate/labels_0"] = deepcam_labels(i)
    good = np.stack([deepcam_field(i) for i in range(3)])
    with h5py.File(os.path.join(d, "stats.h5"), "w") as f:
        f["climate/minval"] = good.min(axis=(0, 1, 2)).astype(np.float32)
        f["climate/maxval"] = good.max(axis=(0, 1, 2)).astype(np.float32)
    # shapes: 8^3 files, then a 4^3 one (each valid on its own) and one with 3 targets
    d = os.path.join(out, "shapes")
    os.makedirs(d)
    for i in range(2):
        with h5py.File(os.path.join(d, "a_good_%d.h5" % i), "w") as f:
            f["x"] = cosmo_counts(i)
            f["y"] = target(i)
    with h5py.File(os.path.join(d, "b_small_x.h5"), "w") as f:
        f["x"] = cosmo_counts(0, n=4)
        f["y"] = target(0)
    with h5py.File(os.path.join(d, "c_short_y.h5"), "w") as f:
        f["x"] = cosmo_counts(1)
        f["y"] = target(1)[:3]


if __name__ == "__main__":
    main(sys.argv[1])
