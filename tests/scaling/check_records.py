"""Checks the records of `halo-scaling run`: one per rank count asked, self-consistent.
Arguments: records ranks batch mode [ranks per sample (--spatial's grid size, default 1)]."""
import json
import sys

path, ranks, batch, mode = sys.argv[1], [int(r) for r in sys.argv[2].split(",")], int(sys.argv[3]), sys.argv[4]
grid = int(sys.argv[5]) if len(sys.argv) > 5 else 1
recs = [json.loads(line) for line in open(path) if line.strip()]
assert [r["ranks"] for r in recs] == ranks, f"ranks {[r['ranks'] for r in recs]}, expected {ranks}"
params = None
for r in recs:
    p = r["ranks"]
    replicas = p // grid
    assert r["mode"] == mode
    if grid > 1:
        assert r["replicas"] == replicas and r["spatial"][0] * r["spatial"][1] * r["spatial"][2] == grid, r
    per_rank = batch if mode == "weak" else batch // replicas
    assert r["batch_per_rank"] == per_rank and r["global_batch"] == per_rank * replicas, r
    assert len(r["rank_steps"]) == p, f"{p} ranks but {len(r['rank_steps'])} per-rank times"
    s = r["rank_step_s"]
    assert 0 < s["min"] <= s["median"] <= s["max"], s
    assert min(r["rank_steps"]) == s["min"] and max(r["rank_steps"]) == s["max"]
    # each step lasts as long as its slowest rank: the group's step is at least the fastest rank's
    assert r["step_s"] >= s["min"] - 1e-9, (r["step_s"], s)
    sps = per_rank * replicas / r["step_s"]
    assert abs(r["samples_per_s"] - sps) <= 1e-3 * sps, (r["samples_per_s"], sps)
    split = r["split"]
    assert all(split[k] >= 0 for k in ("forward_s", "backward_s", "exposed_comm_s", "data_s", "optimizer_s"))
    assert split["forward_s"] > 0 and split["backward_s"] > 0
    prof = r["profile"]
    total = sum(b["bytes"] for b in prof["buckets"])
    assert total > 0 and all(b["ready_s"] >= 0 for b in prof["buckets"])
    # buckets become ready during backward, so none after it ends (some slack for timers)
    assert all(b["ready_s"] <= prof["backward_s"] * 1.5 + 1e-3 for b in prof["buckets"]), prof
    if params is None:
        params = total
    assert total == params, "the same model must have the same gradient bytes at every rank count"
base = recs[0]
assert base["ranks"] == grid and base["efficiency"] == 1.0, base
for r in recs[1:]:
    expect = r["samples_per_s"] / (base["samples_per_s"] * (r["ranks"] // grid))
    assert abs(r["efficiency"] - expect) < 2e-3, (r["efficiency"], expect)
print(f"{len(recs)} records consistent: ranks {ranks}, {params} gradient bytes")
