"""Checks a Halo Chrome trace: valid JSON in the Trace Event Format, one process per rank with
its compute and allreduce tracks, layer forward/backward events, gradient buckets, and
(for the drivers) the step phases asked for on the command line."""
import json
import sys

path, ranks = sys.argv[1], int(sys.argv[2])
want_categories = sys.argv[3].split(",") if len(sys.argv) > 3 else []
doc = json.load(open(path))
events = doc["traceEvents"]
names = {e["pid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}
assert names == {r: f"rank {r}" for r in range(ranks)}, f"process names {names}, expected ranks 0..{ranks - 1}"
for r in range(ranks):
    mine = [e for e in events if e["pid"] == r and e["ph"] in ("X", "i")]
    tracks = {e["tid"] for e in mine}
    assert tracks == {0, 1}, f"rank {r}: tracks {tracks}, expected compute (0) and allreduce (1)"
    spans = [e for e in mine if e["ph"] == "X"]
    assert all(e["dur"] >= 0 and e["ts"] >= 0 for e in spans), f"rank {r}: negative time or duration"
    cats = {e["cat"] for e in mine}
    for c in ["forward", "backward", "allreduce", "bucket"] + want_categories:
        assert c in cats, f"rank {r}: no '{c}' events (have {sorted(cats)})"
    fwd = [e for e in spans if e["cat"] == "forward"]
    bwd = [e for e in spans if e["cat"] == "backward"]
    assert {e["name"].rsplit(" ", 1)[0] for e in fwd} >= {e["name"].rsplit(" ", 1)[0] for e in bwd}, \
        "a layer has a backward but no forward event"
    # every step, each bucket's allreduce is posted once it is ready
    ready, posted = {}, {}
    for e in mine:
        if e["cat"] == "bucket":
            ready.setdefault(e["name"].split(" ready")[0], []).append(e["ts"])
        elif e["cat"] == "allreduce":
            posted.setdefault(e["name"].split(" (")[0], []).append(e["ts"])
    assert ready.keys() == posted.keys() and ready, f"rank {r}: buckets ready {sorted(ready)}, posted {sorted(posted)}"
    for b in ready:
        assert len(ready[b]) == len(posted[b]), f"rank {r}: {b} ready {len(ready[b])} times, posted {len(posted[b])}"
        for t_ready, t_post in zip(sorted(ready[b]), sorted(posted[b])):
            assert t_post >= t_ready - 1.0, f"rank {r}: {b} posted at {t_post} us before it was ready at {t_ready} us"
print(f"{path}: {len(events)} events, {ranks} ranks, categories ok")
