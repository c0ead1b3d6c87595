"""Alpha-beta model of data-parallel training steps, for projecting measured runs to more nodes.

A step is   data wait + forward + backward + exposed communication + optimizer.
Backward produces the gradient buckets one after another (each has a `ready_s`, the time
from the start of backward at which its last gradient is complete). Buckets are reduced in
that order on one communication channel, each starting when it is ready and the previous
one is done, so communication hides behind the rest of backward; what is left after
backward ends is exposed.

One allreduce of n bytes over P = N * R ranks (N nodes, R ranks per node, ranks placed by
node) costs, with a latency alpha and a bandwidth beta per link:

  ring               2(P-1) alpha + 2 (P-1)/P n / beta
                     (with N > 1 every step crosses the network: alpha, beta of the network)
  halving_doubling   reduce-scatter by recursive halving then allgather by recursive doubling
                     (Rabenseifner): step k exchanges n / 2^k bytes with the rank 2^(k-1) away;
                     steps within a node use the node's alpha and beta, steps between nodes
                     the network's, with the node's R concurrent exchanges sharing its link
                     (beta / R). P not a power of two: one extra exchange of n before and after.
  hierarchical       reduce-scatter in the node (ring over R), allreduce of n/R between the
                     nodes (ring over N; the R concurrent allreduces share the link), allgather
                     in the node.

Every collective also pays `overhead_us` (software cost of posting and completing it).
"""
import math


class Link:
    def __init__(self, latency_us, bandwidth_GBps):
        if bandwidth_GBps <= 0:
            raise ValueError(f"bandwidth must be > 0, got {bandwidth_GBps} GB/s")
        if latency_us < 0:
            raise ValueError(f"latency must be >= 0, got {latency_us} us")
        self.alpha = latency_us * 1e-6
        self.beta = bandwidth_GBps * 1e9  # bytes per second

    def shared(self, ways):
        out = Link(0, 1)
        out.alpha, out.beta = self.alpha, self.beta / ways
        return out


ALGORITHMS = ("ring", "halving_doubling", "hierarchical")


class Machine:
    """A machine description (see docs/scaling.md, "Machine descriptions")."""

    def __init__(self, desc):
        def need(d, key, where):
            if key not in d:
                raise ValueError(f"machine description: {where} needs '{key}'")
            return d[key]

        self.name = desc.get("name", "unnamed machine")
        self.ranks_per_node = int(need(desc, "ranks_per_node", "the top level"))
        if self.ranks_per_node < 1:
            raise ValueError("machine description: ranks_per_node must be >= 1")
        intra = need(desc, "intra_node", "the top level")
        inter = need(desc, "inter_node", "the top level")
        self.intra = Link(float(need(intra, "latency_us", "intra_node")), float(need(intra, "bandwidth_GBps", "intra_node")))
        self.inter = Link(float(need(inter, "latency_us", "inter_node")), float(need(inter, "bandwidth_GBps", "inter_node")))
        self.algorithm = desc.get("algorithm", "ring")
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"machine description: algorithm '{self.algorithm}' is not one of {', '.join(ALGORITHMS)}")
        self.overhead = float(desc.get("overhead_us", 0)) * 1e-6
        self.nodes = [int(n) for n in desc.get("nodes", [2 ** k for k in range(14)])]


def ring_time(n, p, link):
    if p <= 1:
        return 0.0
    return 2 * (p - 1) * link.alpha + 2 * (p - 1) / p * n / link.beta


def halving_doubling_time(n, nodes, rpn, intra, inter):
    p = nodes * rpn
    if p <= 1:
        return 0.0
    t = 0.0
    pow2 = 1 << int(math.floor(math.log2(p)))
    if pow2 != p:  # fold the extra ranks in before, and hand them the result after
        t += 2 * (inter.alpha + n / inter.beta) if nodes > 1 else 2 * (intra.alpha + n / intra.beta)
    steps = int(math.log2(pow2))
    for k in range(1, steps + 1):
        distance = 1 << (k - 1)
        link = intra if distance < rpn else inter.shared(min(rpn, pow2))
        t += 2 * (link.alpha + n / (1 << k) / link.beta)  # halving step and its doubling mirror
    return t


def hierarchical_time(n, nodes, rpn, intra, inter):
    t = 0.0
    if rpn > 1:  # reduce-scatter, later allgather, inside the node: each half a ring
        t += ring_time(n, rpn, intra)
    if nodes > 1:
        t += ring_time(n / rpn, nodes, inter.shared(rpn))
    return t


def allreduce_time(n, nodes, machine, ranks_per_node=None):
    rpn = ranks_per_node or machine.ranks_per_node
    p = nodes * rpn
    if p <= 1:
        return 0.0
    if machine.algorithm == "ring":
        link = machine.inter if nodes > 1 else machine.intra
        t = ring_time(n, p, link)
    elif machine.algorithm == "halving_doubling":
        t = halving_doubling_time(n, nodes, rpn, machine.intra, machine.inter)
    else:
        t = hierarchical_time(n, nodes, rpn, machine.intra, machine.inter)
    return t + machine.overhead


class Profile:
    """A measured step on one rank: phase times and the bucket schedule (docs/scaling.md)."""

    def __init__(self, d):
        for key in ("forward_s", "backward_s", "buckets"):
            if key not in d:
                raise ValueError(f"step profile: needs '{key}'")
        self.forward = float(d["forward_s"])
        self.backward = float(d["backward_s"])
        self.optimizer = float(d.get("optimizer_s", 0))
        self.data = float(d.get("data_s", 0))
        self.batch = int(d.get("batch_per_rank", 1))
        self.buckets = sorted(((float(b["ready_s"]), float(b["bytes"])) for b in d["buckets"]), key=lambda b: b[0])
        if not self.buckets:
            raise ValueError("step profile: 'buckets' is empty")
        for ready, size in self.buckets:
            if size <= 0 or ready < 0:
                raise ValueError(f"step profile: bucket with bytes={size} ready_s={ready}: both must be positive")


def project_step(profile, machine, nodes, ranks_per_node=None):
    """Step time, exposed communication and total allreduce time at `nodes` nodes."""
    done = 0.0
    total = 0.0
    for ready, size in profile.buckets:
        t = allreduce_time(size, nodes, machine, ranks_per_node)
        total += t
        done = max(done, ready) + t
    exposed = max(0.0, done - profile.backward) if total > 0 else 0.0
    step = profile.data + profile.forward + profile.backward + exposed + profile.optimizer
    return {"step_s": step, "exposed_comm_s": exposed, "allreduce_s": total}


def projection(profile, machine, node_counts=None):
    """Rows for each node count; efficiency is against one rank (no communication)."""
    base = project_step(profile, machine, 1, 1)["step_s"]
    rows = []
    for n in node_counts or machine.nodes:
        r = project_step(profile, machine, n)
        ranks = n * machine.ranks_per_node
        r.update(nodes=n, ranks=ranks, efficiency=base / r["step_s"],
                 samples_per_s=ranks * profile.batch / r["step_s"])
        rows.append(r)
    return rows
