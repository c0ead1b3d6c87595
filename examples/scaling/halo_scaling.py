#!/usr/bin/env python3
"""halo-scaling project | report: what the measured scaling runs say, and what they predict.

  halo-scaling project --profile results.jsonl --machine machine.yaml [--nodes 1,8,64,...] [--algorithm A]
      Projects the step measured by `halo-scaling run` (its 1-rank record, or the record
      given by --ranks) to each node count of the machine description: step time, exposed
      communication, parallel efficiency. Last line: projection: nodes=<list> efficiency=<list>

  halo-scaling calibrate bench.txt [--ranks-per-node R] [--name NAME]
      Fits the latency and bandwidth of the network from the output of
      `mpiexec -n P halo-bench-allreduce` (its MPI_Allreduce column) and prints a machine
      description for `project`.

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
        fail(f"reading a machine description needs PyYAML, which {sys.executable} lacks "
             "(apt-get install python3-yaml, or set HALO_PYTHON to a Python that has it)")
    try:
        with open(path) as f:
            desc = yaml.safe_load(f)
    except OSError as e:
        fail(f"cannot read {path}: {e.strerror}")
    except yaml.YAMLError as e:
        fail(f"{path}: not valid YAML: {e}")
    if not isinstance(desc, dict):
        fail(f"{path}: not a machine description (a YAML mapping with ranks_per_node, intra_node, inter_node)")
    try:
        return model.Machine(desc)
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
    if args.algorithm:
        machine.algorithm = args.algorithm
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


SPLIT = (("forward_s", "forward"), ("backward_s", "backward"), ("exposed_comm_s", "exposed communication"),
         ("data_s", "data wait"), ("optimizer_s", "optimizer"))


def markdown_table(records):
    head = ("| ranks | nodes | global batch | samples/s | efficiency | eff. vs 1 node | step s | rank min s | rank median s | rank max s | "
            + " | ".join(label + " s" for _, label in SPLIT) + " |")
    lines = [head, "|" + "---|" * (10 + len(SPLIT))]
    for r in records:
        s = r.get("rank_step_s", {})
        split = r.get("split", {})
        eff_node = r.get("efficiency_node")
        lines.append("| " + " | ".join([
            str(r["ranks"]), str(r.get("nodes", 1)), str(r.get("global_batch", "")), f"{r['samples_per_s']:.1f}",
            f"{r['efficiency']:.3f}", "" if eff_node is None else f"{eff_node:.3f}",
            f"{r.get('step_s', 0):.4f}", f"{s.get('min', 0):.4f}", f"{s.get('median', 0):.4f}", f"{s.get('max', 0):.4f}"]
            + [f"{split.get(k, 0):.4f}" for k, _ in SPLIT]) + " |")
    return "\n".join(lines) + "\n"


def cmd_report(args):
    records = read_records(args.results)
    for i, r in enumerate(records, 1):
        for key in ("ranks", "samples_per_s", "efficiency"):
            if key not in r:
                fail(f"{args.results}: record {i} has no '{key}' (is this a `halo-scaling run` file?)")
    records.sort(key=lambda r: r["ranks"])
    out = args.out or os.path.dirname(os.path.abspath(args.results))
    os.makedirs(out, exist_ok=True)
    table = markdown_table(records)
    md = os.path.join(out, "scaling.md")
    with open(md, "w") as f:
        f.write(f"# Scaling: {records[0].get('workload', '?')}, {records[0].get('mode', '?')} scaling\n\n" + table)
    print(table, end="")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        fail(f"the plots need matplotlib, which {sys.executable} lacks (apt-get install python3-matplotlib, "
             "or set HALO_PYTHON to a Python that has it, such as /usr/bin/python3); the table is in " + md)
    ranks = [r["ranks"] for r in records]
    labels = [str(n) for n in ranks]
    pngs = []

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ranks, [r["efficiency"] for r in records], "o-", label="against 1 rank")
    if any(r.get("efficiency_node") is not None for r in records):
        ax.plot(ranks, [r.get("efficiency_node") or float("nan") for r in records], "s--", label="against 1 node")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xticks(ranks, labels)
    ax.set_ylim(0, 1.1)
    ax.set_xlabel("ranks")
    ax.set_ylabel("parallel efficiency")
    ax.legend()
    pngs.append(save(fig, out, "efficiency.png"))

    fig, ax = plt.subplots(figsize=(8, 4))
    bottom = [0.0] * len(records)
    x = range(len(records))
    for key, label in SPLIT:
        vals = [r.get("split", {}).get(key, 0.0) for r in records]
        ax.bar(x, vals, bottom=bottom, label=label)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_xticks(list(x), labels)
    ax.set_xlabel("ranks")
    ax.set_ylabel("seconds per step (rank 0, median)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    pngs.append(save(fig, out, "step_split.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    for xi, r in zip(x, records):
        per_rank = r.get("rank_steps") or []
        ax.scatter([xi] * len(per_rank), per_rank, s=10, alpha=0.6, color="C0")
        s = r.get("rank_step_s", {})
        if s:
            ax.errorbar([xi], [s["median"]], yerr=[[s["median"] - s["min"]], [s["max"] - s["median"]]],
                        fmt="_", color="C3", capsize=6)
    ax.set_xticks(list(x), labels)
    ax.set_xlabel("ranks")
    ax.set_ylabel("each rank's median step, s (bar: min..median..max)")
    pngs.append(save(fig, out, "step_spread.png"))
    print("report: table=" + md + " plots=" + ",".join(pngs))


def save(fig, out, name):
    path = os.path.join(out, name)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def cmd_calibrate(args):
    """Fits t(n) = 2(P-1) alpha + 2(P-1)/P n / beta to halo-bench-allreduce's times: by default
    those of the gradient synchroniser (buckets reduced one after another, as in training),
    or with --column flat those of one plain MPI_Allreduce."""
    ranks, points = None, []
    try:
        with open(args.bench) as f:
            lines = f.read().splitlines()
    except OSError as e:
        fail(f"cannot read {args.bench}: {e.strerror}")
    for line in lines:
        if line.startswith("# ") and " ranks" in line and ranks is None:
            try:
                ranks = int(line[2:].split()[0])
            except ValueError:
                pass
        fields = line.split()
        if len(fields) == 7 and not line.startswith("#"):
            try:
                column = 1 if args.column == "sync" else 4  # sync_us or flat_us
                points.append((float(fields[0]), float(fields[column]) * 1e-6))
            except ValueError:
                continue
    if not ranks or ranks < 2:
        fail(f"{args.bench}: no '# P ranks' header with P >= 2 (is this halo-bench-allreduce output from 2+ ranks?)")
    if len(points) < 2:
        fail(f"{args.bench}: fewer than two allreduce sizes to fit")
    a = 2 * (ranks - 1)
    b = 2 * (ranks - 1) / ranks
    points.sort()
    # The latency from the smallest message, the bandwidth from the large ones (>= 1 MiB,
    # the size of gradient buckets) by least squares through the latency: mid-size messages
    # on TCP networks follow neither term (window growth, shaping bursts) and are left out.
    large = [(n, t) for n, t in points if n >= (1 << 20)] or points[-2:]
    n0, t0 = points[0]
    alpha, beta = t0 / a, None
    for _ in range(3):  # the smallest message also pays a little bandwidth: refine both
        num = sum(b * n * (t - a * alpha) for n, t in large)
        den = sum((b * n) ** 2 for n, t in large)
        if num <= 0:
            fail(f"{args.bench}: the times do not grow with the message size; cannot fit a bandwidth")
        beta = den / num
        # A shaped link passes small messages faster than its rate (token-bucket burst): then
        # the smallest message's time is all latency.
        alpha = (t0 - b * n0 / beta) / a if t0 > b * n0 / beta else t0 / a
    worst = max(abs(a * alpha + b * n / beta - t) / t for n, t in large)
    rpn = args.ranks_per_node
    print(f"# fitted from {len(points)} sizes of the {args.column} allreduce over {ranks} ranks ({args.bench}): "
          f"latency {alpha * 1e6:.1f} us, bandwidth {beta / 1e9:.4f} GB/s; worst misfit on messages >= 1 MiB {100 * worst:.0f}%")
    print(f"name: {args.name}")
    print(f"ranks_per_node: {rpn}")
    print(f"inter_node: {{latency_us: {alpha * 1e6:.2f}, bandwidth_GBps: {beta / 1e9:.5g}}}")
    print("intra_node: {latency_us: %.2f, bandwidth_GBps: %.5g}  # edit: measured between ranks of one node"
          % (alpha * 1e6, beta / 1e9))
    print("algorithm: ring")


def main(argv=None):
    p = argparse.ArgumentParser(prog="halo-scaling", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    pr = sub.add_parser("project", help="project a measured step to more nodes")
    pr.add_argument("--profile", required=True, help="records of `halo-scaling run` (JSON lines)")
    pr.add_argument("--machine", required=True, help="machine description (YAML)")
    pr.add_argument("--nodes", help="node counts, e.g. 1,64,1024,8192 (default: the machine's list)")
    pr.add_argument("--ranks", type=int, help="use the record measured at this many ranks (default: the smallest)")
    pr.add_argument("--algorithm", choices=model.ALGORITHMS,
                    help="allreduce algorithm instead of the machine description's (to bracket an unknown one)")
    pr.add_argument("--json", help="also write the rows to this JSON-lines file")
    pr.set_defaults(func=cmd_project)
    cp = sub.add_parser("calibrate", help="fit latency and bandwidth from halo-bench-allreduce output")
    cp.add_argument("bench", help="the output of mpiexec -n P halo-bench-allreduce (P >= 2, one rank per node)")
    cp.add_argument("--ranks-per-node", type=int, default=1, help="ranks per node of the machine described")
    cp.add_argument("--name", default="calibrated machine", help="the description's name")
    cp.add_argument("--column", choices=("sync", "flat"), default="sync",
                    help="fit the synchroniser's times (default: what training sees) or one plain MPI_Allreduce's")
    cp.set_defaults(func=cmd_calibrate)
    rp = sub.add_parser("report", help="table and plots of `halo-scaling run` records")
    rp.add_argument("results", help="records of `halo-scaling run` (JSON lines)")
    rp.add_argument("--out", help="directory for scaling.md and the PNGs (default: next to the results)")
    rp.set_defaults(func=cmd_report)
    args = p.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
