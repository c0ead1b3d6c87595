"""The scaling model's arithmetic against hand-computed cases (examples/scaling/halo_scaling_model.py)."""
import math
import os
import sys
import unittest

SCALING_DIR = sys.argv.pop(1) if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../examples/scaling")
sys.path.insert(0, SCALING_DIR)
import halo_scaling_model as m  # noqa: E402


def machine(algorithm="ring", rpn=1, intra=(1.0, 100.0), inter=(10.0, 10.0), overhead=0):
    return m.Machine({"ranks_per_node": rpn, "algorithm": algorithm, "overhead_us": overhead,
                      "intra_node": {"latency_us": intra[0], "bandwidth_GBps": intra[1]},
                      "inter_node": {"latency_us": inter[0], "bandwidth_GBps": inter[1]}})


class AllreduceCost(unittest.TestCase):
    n = 100e6  # bytes

    def test_one_rank_costs_nothing(self):
        self.assertEqual(m.allreduce_time(self.n, 1, machine()), 0.0)

    def test_ring_across_nodes(self):
        # 8 ranks: 2*7 latency steps of 10 us, 2*7/8 of the data through 10 GB/s
        expect = 14 * 10e-6 + 2 * 7 / 8 * self.n / 10e9
        self.assertAlmostEqual(m.allreduce_time(self.n, 8, machine("ring")), expect, places=12)

    def test_ring_inside_one_node_uses_the_node_link(self):
        expect = 2 * 3 * 1e-6 + 2 * 3 / 4 * self.n / 100e9
        self.assertAlmostEqual(m.allreduce_time(self.n, 1, machine("ring", rpn=4)), expect, places=12)

    def test_halving_doubling_power_of_two(self):
        # 8 nodes x 1 rank: 3 halving + 3 doubling steps; bytes n/2 + n/4 + n/8 each way
        expect = 2 * 3 * 10e-6 + 2 * (7 / 8) * self.n / 10e9
        self.assertAlmostEqual(m.allreduce_time(self.n, 8, machine("halving_doubling")), expect, places=12)

    def test_halving_doubling_shares_the_node_link(self):
        # 2 nodes x 2 ranks: step 1 (distance 1) inside the node, step 2 between nodes with
        # the two ranks of a node sharing its link (5 GB/s each)
        expect = 2 * (1e-6 + self.n / 2 / 100e9) + 2 * (10e-6 + self.n / 4 / 5e9)
        self.assertAlmostEqual(m.allreduce_time(self.n, 2, machine("halving_doubling", rpn=2)), expect, places=12)

    def test_halving_doubling_not_power_of_two_adds_a_fold(self):
        six = m.allreduce_time(self.n, 6, machine("halving_doubling"))
        four = m.allreduce_time(self.n, 4, machine("halving_doubling"))
        self.assertAlmostEqual(six - four, 2 * (10e-6 + self.n / 10e9), places=12)

    def test_hierarchical(self):
        # 4 nodes x 4 ranks: ring of 4 in the node (both halves), ring of 4 nodes over n/4
        # bytes with the node's link shared four ways
        intra = 2 * 3 * 1e-6 + 2 * 3 / 4 * self.n / 100e9
        inter = 2 * 3 * 10e-6 + 2 * 3 / 4 * (self.n / 4) / (10e9 / 4)
        self.assertAlmostEqual(m.allreduce_time(self.n, 4, machine("hierarchical", rpn=4)), intra + inter, places=12)

    def test_overhead_per_collective(self):
        base = m.allreduce_time(self.n, 2, machine())
        self.assertAlmostEqual(m.allreduce_time(self.n, 2, machine(overhead=50)) - base, 50e-6, places=12)


class Overlap(unittest.TestCase):
    def profile(self, buckets, backward=1.0):
        return m.Profile({"forward_s": 0.5, "backward_s": backward, "optimizer_s": 0.1,
                          "buckets": [{"bytes": b, "ready_s": r} for b, r in buckets]})

    def test_hidden_when_done_before_backward_ends(self):
        p = self.profile([(1e6, 0.1), (1e6, 0.5)])
        r = m.project_step(p, machine(), 2)
        self.assertGreater(r["allreduce_s"], 0)
        self.assertEqual(r["exposed_comm_s"], 0.0)
        self.assertAlmostEqual(r["step_s"], 1.6)

    def test_last_bucket_exposed(self):
        p = self.profile([(1e6, 0.1), (10e9, 0.9)])  # 10 GB at 10 GB/s between 2 ranks: 1 s
        r = m.project_step(p, machine(), 2)
        t_last = m.allreduce_time(10e9, 2, machine())
        self.assertAlmostEqual(r["exposed_comm_s"], 0.9 + t_last - 1.0, places=9)

    def test_buckets_queue_on_one_channel(self):
        # two buckets ready together: the second starts when the first is done
        p = self.profile([(10e9, 0.0), (10e9, 0.0)], backward=0.0)
        t = m.allreduce_time(10e9, 2, machine())
        self.assertAlmostEqual(m.project_step(p, machine(), 2)["exposed_comm_s"], 2 * t, places=9)

    def test_efficiency_against_one_rank(self):
        p = self.profile([(10e9, 0.9)])
        rows = m.projection(p, machine(), [1, 2])
        self.assertAlmostEqual(rows[0]["efficiency"], 1.0)
        self.assertAlmostEqual(rows[1]["efficiency"], 1.6 / rows[1]["step_s"])
        self.assertLess(rows[1]["efficiency"], 1.0)


class Calibrate(unittest.TestCase):
    def test_recovers_latency_and_bandwidth(self):
        # halo-bench-allreduce's table for 4 ranks on a network of 10 us and 2 GB/s, with
        # mid-size messages slower than the model (as on TCP), which the fit must ignore
        import contextlib
        import io
        import tempfile
        import halo_scaling
        P, alpha, beta = 4, 10e-6, 2e9
        rows = ["# 4 ranks, MPI thread level 3; bus bandwidth = algbw * 2(n-1)/n",
                "       bytes      sync_us algbw_GB/s busbw_GB/s      flat_us algbw_GB/s busbw_GB/s"]
        for n in [4096, 65536, 262144, 1 << 20, 1 << 22, 1 << 24]:
            t = 2 * (P - 1) * alpha + 2 * (P - 1) / P * n / beta
            if 4096 < n < (1 << 20):
                t *= 3
            rows.append(f"{n:12d} {t * 1e6:12.1f} 0 0 {t * 1e6:12.1f} 0 0")
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            f.write("\n".join(rows) + "\n")
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            halo_scaling.main(["calibrate", f.name, "--ranks-per-node", "4"])
        os.unlink(f.name)
        import re
        inter = re.search(r"inter_node: \{latency_us: ([0-9.]+), bandwidth_GBps: ([0-9.]+)\}", out.getvalue())
        self.assertIsNotNone(inter, out.getvalue())
        self.assertAlmostEqual(float(inter.group(1)), 10.0, delta=0.2)
        self.assertAlmostEqual(float(inter.group(2)), 2.0, delta=0.01)
        self.assertIn("ranks_per_node: 4", out.getvalue())


class BadInput(unittest.TestCase):
    def test_missing_field_is_named(self):
        with self.assertRaisesRegex(ValueError, "inter_node"):
            m.Machine({"ranks_per_node": 1, "intra_node": {"latency_us": 1, "bandwidth_GBps": 1}})
        with self.assertRaisesRegex(ValueError, "bandwidth_GBps"):
            m.Machine({"ranks_per_node": 1, "intra_node": {"latency_us": 1},
                       "inter_node": {"latency_us": 1, "bandwidth_GBps": 1}})

    def test_unknown_algorithm(self):
        with self.assertRaisesRegex(ValueError, "tree"):
            machine("tree")

    def test_empty_buckets(self):
        with self.assertRaisesRegex(ValueError, "buckets"):
            m.Profile({"forward_s": 1, "backward_s": 1, "buckets": []})


class ProjectCommand(unittest.TestCase):
    """`project` on a profile written by hand (one bucket ready at the end of backward) and
    --algorithm replacing the machine description's allreduce."""

    def run_project(self, *extra):
        import contextlib
        import io
        import json
        import tempfile
        import halo_scaling
        with tempfile.TemporaryDirectory() as d:
            prof = os.path.join(d, "p.jsonl")
            with open(prof, "w") as f:
                f.write(json.dumps({"ranks": 1, "profile": {
                    "batch_per_rank": 1, "forward_s": 0.0, "backward_s": 0.25,
                    "buckets": [{"bytes": 28e6, "ready_s": 0.25}]}}) + "\n")
            mach = os.path.join(d, "m.yaml")
            with open(mach, "w") as f:
                f.write("ranks_per_node: 1\nalgorithm: halving_doubling\n"
                        "intra_node: {latency_us: 1, bandwidth_GBps: 10}\n"
                        "inter_node: {latency_us: 100, bandwidth_GBps: 10}\n")
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                halo_scaling.main(["project", "--profile", prof, "--machine", mach, "--nodes", "1,64"] + list(extra))
        last = out.getvalue().strip().splitlines()[-1]
        self.assertTrue(last.startswith("projection: nodes=1,64 efficiency="), last)
        return [float(x) for x in last.split("efficiency=")[1].split(",")], out.getvalue()

    def expected(self, algorithm):
        mach = machine(algorithm, inter=(100.0, 10.0))
        return 0.25 / (0.25 + m.allreduce_time(28e6, 64, mach))

    def test_hand_written_profile_uses_the_description(self):
        eff, text = self.run_project()
        self.assertIn("halving_doubling allreduce", text)
        self.assertAlmostEqual(eff[0], 1.0, places=3)
        self.assertAlmostEqual(eff[1], self.expected("halving_doubling"), places=3)

    def test_algorithm_option_replaces_the_description(self):
        eff, text = self.run_project("--algorithm", "ring")
        self.assertIn("ring allreduce", text)
        self.assertAlmostEqual(eff[1], self.expected("ring"), places=3)
        self.assertLess(self.expected("ring"), self.expected("halving_doubling") - 0.01)


class PublishedComparison(unittest.TestCase):
    """The efficiencies docs/scaling.md sets beside the published CosmoFlow run, and the 4-node
    step the April profile's compute was derived from, follow from the shipped profiles and
    machine description (examples/scaling/published, machines)."""

    def project(self, profile, nodes, algorithm, latency_us=None):
        """(efficiency, step_s) at `nodes` nodes."""
        import contextlib
        import io
        import json
        import tempfile
        import halo_scaling
        mach = os.path.join(SCALING_DIR, "machines", "cori-knl-aries.yaml")
        with tempfile.TemporaryDirectory() as d:
            if latency_us is not None:  # the latency between dragonfly groups
                with open(mach) as f:
                    text = f.read()
                self.assertIn("latency_us: 1.3,", text)
                mach = os.path.join(d, "m.yaml")
                with open(mach, "w") as f:
                    f.write(text.replace("latency_us: 1.3,", f"latency_us: {latency_us},"))
            rows = os.path.join(d, "rows.jsonl")
            with contextlib.redirect_stdout(io.StringIO()):
                halo_scaling.main(["project", "--profile", os.path.join(SCALING_DIR, "published", profile),
                                   "--machine", mach, "--nodes", str(nodes), "--algorithm", algorithm,
                                   "--json", rows])
            with open(rows) as f:
                row = [json.loads(line) for line in f][-1]
        self.assertEqual(row["nodes"], nodes)
        return row["efficiency"], row["step_s"]

    def test_april_code_at_8192_nodes(self):
        april = "cosmoflow-cori-knl-2018-april.jsonl"
        self.assertAlmostEqual(self.project(april, 8192, "halving_doubling")[0], 0.965, places=3)
        self.assertAlmostEqual(self.project(april, 8192, "ring")[0], 0.850, places=3)
        self.assertAlmostEqual(self.project(april, 8192, "ring", latency_us=2.2)[0], 0.785, places=3)

    def test_april_compute_gives_the_logged_4_node_step(self):
        for algorithm in ("halving_doubling", "ring"):
            self.assertAlmostEqual(self.project("cosmoflow-cori-knl-2018-april.jsonl", 4, algorithm)[1],
                                   0.1557, delta=2e-4)

    def test_march_code_pipeline_off_at_4096_nodes(self):
        march = "cosmoflow-cori-knl-2018.jsonl"
        self.assertAlmostEqual(self.project(march, 4096, "halving_doubling")[0], 0.979, places=3)
        self.assertAlmostEqual(self.project(march, 4096, "ring")[0], 0.940, places=3)
        self.assertAlmostEqual(self.project(march, 4096, "ring", latency_us=2.2)[0], 0.915, places=3)

if __name__ == "__main__":
    unittest.main()
