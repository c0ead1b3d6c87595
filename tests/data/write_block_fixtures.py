#!/usr/bin/python3
"""Fixtures for reading one spatial block per rank (tests/data/test_data_blocks.cpp).

Writes, with h5py, one small set of files per layout Halo reads, and for a list of blocks of
their samples the values numpy computes from those arrays (transform included), so the C++
side compares H5Dataset::read_block with an independent computation:

  OUT/<set>/...                    the HDF5 files of a set (test_data_blocks.cpp knows each layout)
  OUT/blocks.txt                   one line per block: set sample d0 d1 h0 h1 w0 w1 name
                                   (2D sets: the third pair is 0 0; raw: sample = cube index)
  OUT/expected/<name>.cf.f32       float32 (C, block...)   as read_block delivers it
  OUT/expected/<name>.cl.f32       float32 (block..., C)   with channels_last
  OUT/expected/<name>.y            the label: float32 vector whole, int32 class map cropped

  OUT/sealed/<set>/...             files whose data (and class-map) chunks outside one block
                                   are unreadable (deflate chunks of garbage): reading only
                                   the block succeeds, anything more fails
  OUT/sealed.txt                   set sample d0 d1 h0 h1 w0 w1 name (expected/ as above)

  OUT/poison/nan/x.h5, OUT/poison/negative/x.h5: one bad value each (positions below and in
                                   test_data_blocks.cpp); the value checks of read_block must
                                   see it in blocks holding it and only there

Usage: write_block_fixtures.py OUTDIR
"""
import os
import shutil
import sys

import h5py
import numpy as np

NAN_AT = (5, 2, 6, 1)       # (D,H,W,C) of the NaN in poison/nan/x.h5 (float32, 8x8x8x4)
NEGATIVE_AT = (1, 6, 3, 2)  # of the -2 in poison/negative/x.h5 (int16 counts, log1p)


def counts(i, shape):
    """Deterministic int16 particle counts in [0, 60): distinct along every axis."""
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    mult = [7, 3, 1, 11, 13][: len(shape)]
    v = sum(m * g for m, g in zip(mult, grids)) + 5 * i
    return (v % 60).astype(np.int16)


def field(i, shape):
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    mult = [1.5, -0.25, 10.0, 0.5][: len(shape)]
    return (sum(m * g for m, g in zip(mult, grids)) + i).astype(np.float32)


def target(i, n=4):
    return (np.arange(n, dtype=np.float32) * 0.5 - i).astype(np.float32)


def log1p(x):
    # Halo converts int16 counts through a table of log1p in double, rounded to float
    return np.log1p(x.astype(np.float64)).astype(np.float32)


# ---- sets: name -> (samples as (delivered (C, spatial...) float32, label), spatial extents)
# Each writer returns a function sample(i) -> (x (C, spatial...) float32, y) computed by numpy.

def write_mlperf(d, n=2, shape=(128, 20, 16, 4)):
    # D = 128 for the [0:43] / [43:86] / [86:128] splits; 320 KiB per sample, so the
    # whole-sample read goes through more than one slab
    for i in range(n):
        with h5py.File(os.path.join(d, "cosmo_%d.h5" % i), "w") as f:
            f["x"] = counts(i, shape)
            f["y"] = target(i)
    return lambda i: (np.moveaxis(log1p(counts(i, shape)), -1, 0), target(i))


def write_mlperf_f32(d, shape=(24, 10, 12, 4)):
    with h5py.File(os.path.join(d, "cosmo_0.h5"), "w") as f:
        f["x"] = counts(0, shape).astype(np.float32)
        f["y"] = target(0)
    return lambda i: (np.moveaxis(np.log1p(counts(0, shape).astype(np.float32)), -1, 0), target(0))


def write_lbann(d, n=2, shape=(4, 24, 20, 16)):
    for i in range(n):
        with h5py.File(os.path.join(d, "univ_%d.h5" % i), "w") as f:
            f["full"] = counts(i, shape).astype(np.float32) / np.float32(10)
            f["unitPar"] = target(i)
    return lambda i: (counts(i, shape).astype(np.float32) / np.float32(10), target(i))


RAW_EDGE = 16


def raw_origin(k, shape):
    """Origin of cube k: cubes enumerated D-major, as H5Dataset does."""
    n = [s // RAW_EDGE for s in shape[:3]]
    return ((k // (n[1] * n[2])) * RAW_EDGE, ((k // n[2]) % n[1]) * RAW_EDGE, (k % n[2]) * RAW_EDGE)


def write_raw(d, shape=(32, 48, 16, 4)):
    with h5py.File(os.path.join(d, "universe_0.h5"), "w") as f:
        f["full"] = counts(3, shape)
        f["unitPar"] = target(3)

    def sample(k):
        o = raw_origin(k, shape)
        cube = counts(3, shape)[o[0]:o[0] + RAW_EDGE, o[1]:o[1] + RAW_EDGE, o[2]:o[2] + RAW_EDGE]
        return np.moveaxis(log1p(cube), -1, 0), target(3)
    return sample


def write_deepcam(d, n=2, shape=(40, 57, 5)):
    xs = [field(i, shape) for i in range(n)]
    labels = [(counts(i, shape[:2]) % 3).astype(np.int16) for i in range(n)]  # any integer type
    for i in range(n):
        with h5py.File(os.path.join(d, "data-%d.h5" % i), "w") as f:
            f["climate/data"] = xs[i]
            f["climate/labels_0"] = labels[i]
    allx = np.stack(xs)
    mn, mx = allx.min(axis=(0, 1, 2)), allx.max(axis=(0, 1, 2))
    with h5py.File(os.path.join(d, "stats.h5"), "w") as f:
        f["climate/minval"] = mn.astype(np.float32)
        f["climate/maxval"] = mx.astype(np.float32)
    norm = lambda x: ((x.astype(np.float64) - mn) / (mx - mn)).astype(np.float32)
    return lambda i: (np.moveaxis(norm(xs[i]), -1, 0), labels[i].astype(np.int32))


def packed_attrs(f, axes, transform, label_kind):
    f.attrs["halo_format"] = "packed"
    f.attrs["axes"] = axes
    f.attrs["transform"] = transform
    f.attrs["label_kind"] = label_kind


def write_packed3d(d, n=5, shape=(12, 10, 8, 2)):
    data = np.stack([counts(i, shape) for i in range(n)])
    labels = np.stack([target(i, 3) for i in range(n)])
    with h5py.File(os.path.join(d, "shard-0.h5"), "w") as f:
        f.create_dataset("data", data=data, chunks=(1,) + shape)
        f["label"] = labels
        f["origin/position"] = np.zeros((n, 5), dtype=np.int64)
        packed_attrs(f, "DHWC", "log1p", "vector")
    return lambda i: (np.moveaxis(log1p(data[i]), -1, 0), labels[i])


def write_packed2d(d, n=4, shape=(14, 11, 3)):
    data = np.stack([(counts(i, shape) * 4).astype(np.uint8) for i in range(n)])
    labels = np.stack([(counts(i, shape[:2]) % 3).astype(np.int32) for i in range(n)])
    with h5py.File(os.path.join(d, "shard-0.h5"), "w") as f:
        f.create_dataset("data", data=data, chunks=(1,) + shape)
        f["label"] = labels
        f["origin/position"] = np.zeros((n, 5), dtype=np.int64)
        packed_attrs(f, "HWC", "none", "mask")
    return lambda i: (np.moveaxis(data[i].astype(np.float32), -1, 0), labels[i])


def write_custom(d, shape=(10, 9, 7)):
    # no channel axis, float64 values, a uint8 class map: Layout{axes "ZYX", mask}
    t = field(0, shape).astype(np.float64) / 3.0
    cls = (counts(0, shape) % 4).astype(np.uint8)
    with h5py.File(os.path.join(d, "run.h5"), "w") as f:
        f["fields/t"] = t
        f["fields/class"] = cls
    return lambda i: (t.astype(np.float32)[None], cls.astype(np.int32))


SETS = [
    # name, writer, samples, spatial extents of one sample
    ("mlperf", write_mlperf, 2, (128, 20, 16)),
    ("mlperf_f32", write_mlperf_f32, 1, (24, 10, 12)),
    ("lbann", write_lbann, 2, (24, 20, 16)),
    ("raw", write_raw, 6, (RAW_EDGE,) * 3),
    ("deepcam", write_deepcam, 2, (40, 57)),
    ("packed3d", write_packed3d, 5, (12, 10, 8)),
    ("packed2d", write_packed2d, 4, (14, 11)),
    ("custom", write_custom, 1, (10, 9, 7)),
]


def blocks(ext):
    """The whole sample; uneven 3-way splits along each axis (np.array_split: 43/43/42 of
    128); 2-way splits along every axis at once (each block touches a corner, together every
    face); an interior block; the last voxel."""
    whole = [(0, e) for e in ext]
    out = [whole]
    for a, e in enumerate(ext):
        for part in np.array_split(np.arange(e), 3):
            b = list(whole)
            b[a] = (int(part[0]), int(part[-1]) + 1)
            out.append(b)
    for corner in range(2 ** len(ext)):
        b = []
        for a, e in enumerate(ext):
            h = (e + 1) // 2
            b.append((0, h) if (corner >> a) & 1 == 0 else (h, e))
        out.append(b)
    out.append([(1, e - 1) for e in ext])
    out.append([(e - 1, e) for e in ext])
    return out


def crop(x, y, b, label_is_map):
    sl = tuple(slice(s, e) for s, e in b)
    xb = x[(slice(None),) + sl]
    return xb, (y[sl] if label_is_map else y)


def save_expected(out, name, xb, yb):
    e = os.path.join(out, "expected")
    np.ascontiguousarray(xb, dtype=np.float32).tofile(os.path.join(e, name + ".cf.f32"))
    np.ascontiguousarray(np.moveaxis(xb, 0, -1), dtype=np.float32).tofile(os.path.join(e, name + ".cl.f32"))
    np.ascontiguousarray(yb).tofile(os.path.join(e, name + ".y"))


def line(set_name, i, b, name):
    pairs = list(b) + [(0, 0)] * (3 - len(b))
    return " ".join([set_name, str(i)] + ["%d %d" % p for p in pairs] + [name])


# ---- sealed sets: every chunk outside one block is garbage
GARBAGE = b"\xff" * 16  # not a zlib stream: inflating it fails, so does any read of the chunk


def seal(dset, keep):
    """Overwrites every chunk of `dset` that is not inside `keep` (per-axis (start, stop),
    chunk-aligned) with bytes the deflate filter rejects."""
    chunks = dset.chunks
    grid = [range(0, n, c) for n, c in zip(dset.shape, chunks)]
    for origin in np.array(np.meshgrid(*grid, indexing="ij")).reshape(len(chunks), -1).T:
        inside = all(s <= o and o + c <= e for o, c, (s, e) in zip(origin, chunks, keep))
        if not inside:
            dset.id.write_direct_chunk(tuple(int(o) for o in origin), GARBAGE, 0)


def write_sealed(out):
    lines = []

    def sealed_file(path, data, chunks, keep, extra):
        with h5py.File(path, "w") as f:
            extra(f)
            d = f.create_dataset(data[0], data=data[1], chunks=chunks, compression="gzip")
            seal(d, keep)

    # MLPerf int16 (D,H,W,C): block [4:12, 4:8, 0:4]
    d = os.path.join(out, "sealed", "mlperf")
    os.makedirs(d)
    x = counts(1, (16, 12, 8, 4))
    b = [(4, 12), (4, 8), (0, 4)]
    sealed_file(os.path.join(d, "cosmo_0.h5"), ("x", x), (4, 4, 4, 4), b + [(0, 4)],
                lambda f: f.create_dataset("y", data=target(1)))
    save_expected(out, "sealed_mlperf", *crop(np.moveaxis(log1p(x), -1, 0), target(1), b, False))
    lines.append(line("mlperf", 0, b, "sealed_mlperf"))
    # LBANN float32 (C,D,H,W): block [4:8, 4:12, 4:8]
    d = os.path.join(out, "sealed", "lbann")
    os.makedirs(d)
    x = counts(2, (4, 16, 12, 8)).astype(np.float32)
    b = [(4, 8), (4, 12), (4, 8)]
    sealed_file(os.path.join(d, "univ_0.h5"), ("full", x), (1, 4, 4, 4), [(0, 4)] + b,
                lambda f: f.create_dataset("unitPar", data=target(2)))
    save_expected(out, "sealed_lbann", *crop(x, target(2), b, False))
    lines.append(line("lbann", 0, b, "sealed_lbann"))
    # raw universe (32,16,16,4) in cubes of 16: cube 1 (origin 16,0,0), block [4:8, 0:8, 8:16]
    d = os.path.join(out, "sealed", "raw")
    os.makedirs(d)
    x = counts(4, (32, 16, 16, 4))
    b = [(4, 8), (0, 8), (8, 16)]
    absolute = [(16 + 4, 16 + 8), (0, 8), (8, 16), (0, 4)]
    sealed_file(os.path.join(d, "universe_0.h5"), ("full", x), (4, 4, 4, 4), absolute,
                lambda f: f.create_dataset("unitPar", data=target(4)))
    save_expected(out, "sealed_raw", *crop(np.moveaxis(log1p(x[16:32]), -1, 0), target(4), b, False))
    lines.append(line("raw", 1, b, "sealed_raw"))
    # DeepCAM (H,W,C) float32 and its (H,W) class map, both sealed: block [4:12, 6:18]
    d = os.path.join(out, "sealed", "deepcam")
    os.makedirs(d)
    x = field(0, (16, 24, 5))
    lab = (counts(0, (16, 24)) % 3).astype(np.int32)
    b = [(4, 12), (6, 18)]

    def labels(f):
        ld = f.create_dataset("climate/labels_0", data=lab, chunks=(4, 6), compression="gzip")
        seal(ld, b)
    sealed_file(os.path.join(d, "data-0.h5"), ("climate/data", x), (4, 6, 5), b + [(0, 5)], labels)
    mn, mx = x.min(axis=(0, 1)), x.max(axis=(0, 1))
    with h5py.File(os.path.join(d, "stats.h5"), "w") as f:
        f["climate/minval"] = mn
        f["climate/maxval"] = mx
    norm = ((x.astype(np.float64) - mn) / (mx - mn)).astype(np.float32)
    save_expected(out, "sealed_deepcam", *crop(np.moveaxis(norm, -1, 0), lab, b, True))
    lines.append(line("deepcam", 0, b, "sealed_deepcam"))
    # packed shard of 3 (D,H,W,C) int16 rows: row 1, block [4:8, 0:4, 4:8]; rows 0 and 2 sealed
    d = os.path.join(out, "sealed", "packed3d")
    os.makedirs(d)
    data = np.stack([counts(i, (8, 8, 8, 2)) for i in range(3)])
    labels3 = np.stack([target(i, 3) for i in range(3)])
    b = [(4, 8), (0, 4), (4, 8)]

    def packed_extra(f):
        f["label"] = labels3
        f["origin/position"] = np.zeros((3, 5), dtype=np.int64)
        packed_attrs(f, "DHWC", "log1p", "vector")
    sealed_file(os.path.join(d, "shard-0.h5"), ("data", data), (1, 4, 4, 4, 2), [(1, 2)] + b + [(0, 2)],
                packed_extra)
    save_expected(out, "sealed_packed3d", *crop(np.moveaxis(log1p(data[1]), -1, 0), labels3[1], b, False))
    lines.append(line("packed3d", 1, b, "sealed_packed3d"))
    return lines


def write_poison(out):
    for name, dtype, at, value in (("nan", np.float32, NAN_AT, np.nan), ("negative", np.int16, NEGATIVE_AT, -2)):
        d = os.path.join(out, "poison", name)
        os.makedirs(d)
        x = counts(0, (8, 8, 8, 4)).astype(dtype)
        x[at] = value
        with h5py.File(os.path.join(d, "x.h5"), "w") as f:
            f["x"] = x
            f["y"] = target(0)


def main(out):
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(os.path.join(out, "expected"))
    lines = []
    for name, writer, n, ext in SETS:
        d = os.path.join(out, name)
        os.makedirs(d)
        sample = writer(d)
        for k, b in enumerate(blocks(ext)):
            i = k % n
            x, y = sample(i)
            assert x.shape[1:] == ext, (name, x.shape, ext)
            block_name = "%s_%d" % (name, k)
            label_is_map = y.dtype == np.int32 and y.shape == ext
            save_expected(out, block_name, *crop(x, y, b, label_is_map))
            lines.append(line(name, i, b, block_name))
    with open(os.path.join(out, "blocks.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(out, "sealed.txt"), "w") as f:
        f.write("\n".join(write_sealed(out)) + "\n")
    write_poison(out)


if __name__ == "__main__":
    main(sys.argv[1])
