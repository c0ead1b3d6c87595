#!/usr/bin/env python3
"""halo-scaling project | report: what the measured scaling runs say, and what they predict.

  halo-scaling project --profile results.jsonl --machine machine.yaml [--nodes 1,8,64,...]
      Projects the step measured by `halo-scaling run` (its 1-rank record, or the record
      given by --ranks) to each node count of the machine description: step time, exposed
      communication, parallel efficiency. Last line: projection: nodes=<list> efficiency=<list>

  halo-scaling report results.jsonl [--out DIR]
      A Markdown table of the records and PNG plots: efficiency against ranks, the stacked
      step-time split, the per-rank step-time spread.

Formats are documented in docs/scaling.md. `halo-scaling run` is the MPI program itself.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import halo_scaling_model as model  # noqa: E402


def fail(msg):
    print(f"halo-scaling: {msg}", file=sys.stderr)
    sys.exit(2)


def read_records(path):
    records = []
    try:
        with open(path) as f:
            for no, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as e:
                    fail(f"{path}:{no}: not a JSON record ({e.msg})")
    except OSError as e:
        fail(f"cannot read {path}: {e.strerror}")
    if not records:
        fail(f"{path} holds no records")
    return records


def read_machine(path):
    try:
        import yaml
    except ImportError:
        fail("reading a machine description needs PyYAML (apt-get install python3-yaml)")
    try:
        with open(path) as f:
            desc = yaml.safe_load(f)
    except OSError as e:
        fail(f"cannot read {path}: {e.strerror}")
    except yaml.YAMLError as e:
        fail(f"{path}: not valid YAML: {e}")
    try:
        return model.Machine(desc or {})
    except ValueError as e:
        fail(f"{path}: {e}")


def pick_profile(records, ranks, path):
    with_profile = [r for r in records if "profile" in r]
    if not with_profile:
        fail(f"{path}: no record has a 'profile' (the step split and bucket schedule)")
    if ranks is None:
        chosen = min(with_profile, key=lambda r: r.get("ranks", 1))
    else:
        matches = [r for r in with_profile if r.get("ranks") == ranks]
        if not matches:
            fail(f"{path}: no record at {ranks} ranks (have {sorted(r.get('ranks') for r in with_profile)})")
        chosen = matches[0]
    try:
        return model.Profile(chosen["profile"]), chosen
    except ValueError as e:
        fail(f"{path}: {e}")


def cmd_project(args):
    records = read_records(args.profile)
    profile, rec = pick_profile(records, args.ranks, args.profile)
    machine = read_machine(args.machine)
    nodes = machine.nodes
    if args.nodes:
        try:
            nodes = [int(x) for x in args.nodes.split(",")]
        except ValueError:
            fail(f"--nodes wants a comma-separated list of node counts, got '{args.nodes}'")
        if any(n < 1 for n in nodes):
            fail("--nodes: node counts must be >= 1")
    rows = model.projection(profile, machine, nodes)
    total = sum(b for _, b in profile.buckets)
    print(f"# {machine.name}: {machine.ranks_per_node} ranks/node, {machine.algorithm} allreduce; "
          f"step measured at {rec.get('ranks', '?')} rank(s): forward {profile.forward:.4f} s, "
          f"backward {profile.backward:.4f} s, {len(profile.buckets)} buckets, {total / 1e6:.1f} MB")
    print(f"{'nodes':>7} {'ranks':>8} {'step_s':>10} {'allreduce_s':>12} {'exposed_s':>10} {'efficiency':>10} {'samples/s':>12}")
    for r in rows:
        print(f"{r['nodes']:>7} {r['ranks']:>8} {r['step_s']:>10.4f} {r['allreduce_s']:>12.4f} "
              f"{r['exposed_comm_s']:>10.4f} {r['efficiency']:>10.3f} {r['samples_per_s']:>12.1f}")
    if args.json:
        with open(args.json, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    print("projection: nodes=" + ",".join(str(r["nodes"]) for r in rows) +
          " efficiency=" + ",".join(f"{r['efficiency']:.3f}" for r in rows))


def main(argv=None):
    p = argparse.ArgumentParser(prog="halo-scaling", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    pr = sub.add_parser("project", help="project a measured step to more nodes")
    pr.add_argument("--profile", required=True, help="records of `halo-scaling run` (JSON lines)")
    pr.add_argument("--machine", required=True, help="machine description (YAML)")
    pr.add_argument("--nodes", help="node counts, e.g. 1,64,1024,8192 (default: the machine's list)")
    pr.add_argument("--ranks", type=int, help="use the record measured at this many ranks (default: the smallest)")
    pr.add_argument("--json", help="also write the rows to this JSON-lines file")
    pr.set_defaults(func=cmd_project)
    args = p.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
