"""Asserts two halo checkpoints hold bit-identical training state (parameters by name,
buffers, optimizer state, Dropout positions, schedule position), and optionally that a
third differs (the interrupted one: the resumed run did train) and that the last metrics
records of two runs agree. With --rtol, floating-point entries and metrics need only agree
to that tolerance relative to the largest magnitude of each entry (runs that sum in another
order: spatially split against unsplit)."""
import argparse
import json
import sys

import h5py
import numpy as np


def load(path, first_param):
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
        # Parameters open by their model names, as paths.
        assert f"model/{first_param}" in f, f"{path}: no model/{first_param}"
    return out


def state(ckpt):
    keep = ("model/", "buffers/", "optimizer/", "meta/dropout_step/", "loss_scaler/")
    scalars = ("meta/global_step", "meta/epoch", "meta/step_in_epoch")
    return {k: v for k, v in ckpt.items() if k.startswith(keep) or k in scalars}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--differs")
    ap.add_argument("--metrics", nargs=2)
    ap.add_argument("--param", default="conv1/weight", help="a parameter that must open by its name")
    ap.add_argument("--no-dropout", action="store_true", help="the model has no Dropout layer")
    ap.add_argument("--rtol", type=float, default=0.0, help="tolerance for floats (0: bit-identical)")
    args = ap.parse_args()
    a, b = state(load(args.a, args.param)), state(load(args.b, args.param))
    assert a.keys() == b.keys(), f"different entries: {sorted(a.keys() ^ b.keys())}"
    assert any(k.startswith("optimizer/") for k in a), "no optimizer state saved"
    if not args.no_dropout:
        assert any(k.startswith("meta/dropout_step/") for k in a), "no Dropout positions saved"
    def differs(x, y):
        x, y = np.asarray(x), np.asarray(y)
        if args.rtol > 0 and x.dtype.kind == "f" and x.shape == y.shape:
            scale = max(np.max(np.abs(x), initial=0.0), 1e-12)
            return np.max(np.abs(x - y), initial=0.0) > args.rtol * scale
        return x.tobytes() != y.tobytes()

    bad = [k for k in a if differs(a[k], b[k])]
    assert not bad, f"{len(bad)} entries differ, e.g. {bad[:5]}"
    how = f"within {args.rtol:g} relative" if args.rtol > 0 else "bit-identical"
    print(f"{len(a)} entries {how} (global step {a['meta/global_step']})")
    if args.differs:
        c = state(load(args.differs, args.param))
        same = [k for k in a if k.startswith("model/") and np.asarray(a[k]).tobytes() == np.asarray(c[k]).tobytes()]
        assert len(same) < sum(k.startswith("model/") for k in a), "the interrupted checkpoint equals the final one"
    if args.metrics:
        last = []
        for p in args.metrics:
            with open(p) as f:
                last.append(json.loads(f.read().splitlines()[-1]))
        keys = ["epoch", "step", "train_loss", "train_samples"]
        keys += sorted(k for k in last[0] if k.startswith("val_") and k != "val_seconds")  # loss and the metric
        for k in keys:
            x, y = last[0][k], last[1][k]
            close = abs(x - y) <= args.rtol * max(abs(x), abs(y)) if args.rtol > 0 and isinstance(x, float) else x == y
            assert close, f"last epoch's {k}: {x} vs {y}"
        print(f"last epoch's metrics agree: {', '.join(k + ' ' + str(last[0][k]) for k in keys[4:])}")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
