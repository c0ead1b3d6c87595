"""Checks an MLPerf log written by a Halo driver (output.mllog).

  check_mllog.py LOG [--allow REGEX]... [--expect KEY=VALUE]... [--count KEY=N]... [--status S]

Runs MLPerf's own compliance checker (python3 -m mlperf_logging.compliance_checker --usage hpc
--ruleset 3.0.0 LOG) and fails on any finding that matches none of the --allow expressions
(on generated data the target metric is not reached, and DeepCAM's closed rules want the real
data set's sizes). Then checks what the checker does not: logged values (--expect, compared as
JSON), how often a key occurs (--count) and run_stop's status.

When the package is not importable, the other checks still run; if they pass it prints
HALO_TEST_SKIPPED (the tests' skip expression) with the command that installs it, and exits 0.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

p = argparse.ArgumentParser()
p.add_argument("log")
p.add_argument("--allow", action="append", default=[])
p.add_argument("--expect", action="append", default=[])
p.add_argument("--count", action="append", default=[])
p.add_argument("--status")
a = p.parse_args()

fail = []
try:
    import mlperf_logging.compliance_checker  # noqa: F401
    have_checker = True
except ImportError:
    have_checker = False
if have_checker:
  with tempfile.TemporaryDirectory() as tmp:
    cmd = [sys.executable, "-m", "mlperf_logging.compliance_checker", "--usage", "hpc", "--ruleset", "3.0.0",
           "--log_output", os.path.join(tmp, "checker.log"), a.log]
    r = subprocess.run(cmd, capture_output=True, text=True)
  out = r.stdout + r.stderr
  print("$ " + " ".join(cmd[:-3] + [a.log]) + f"\n{out}(exit {r.returncode})")
  if r.returncode != 0:
    # The findings: one WARNING block, messages separated by lines of 30 dashes.
    m = re.search(r"WARNING - (.*?)(?:\nERROR - FAILED|\Z)", out, re.S)
    findings = [f.strip() for f in re.split(r"\n-{30}\n", m.group(1))] if m else [out]
    for f in findings:
        if not any(re.search(rx, f, re.S) for rx in a.allow):
            fail.append("checker finding not allowed:\n" + f)

lines = []
with open(a.log) as f:
    for n, line in enumerate(f, 1):
        if ":::MLLOG " in line:
            lines.append(json.loads(line.split(":::MLLOG ", 1)[1]))
by_key = {}
for l in lines:
    by_key.setdefault(l["key"], []).append(l)
for e in a.expect:
    k, v = e.split("=", 1)
    got = [l["value"] for l in by_key.get(k, [])]
    if got != [json.loads(v)]:
        fail.append(f"{a.log}: {k} logged as {got}, expected [{v}]")
for c in a.count:
    k, n = c.split("=", 1)
    if len(by_key.get(k, [])) != int(n):
        fail.append(f"{a.log}: {k} logged {len(by_key.get(k, []))} times, expected {n}")
if a.status:
    st = [l["metadata"].get("status") for l in by_key.get("run_stop", [])]
    if st != [a.status]:
        fail.append(f"{a.log}: run_stop status {st}, expected [{a.status}]")
# The timed region holds every epoch: run_start before the first epoch_start, run_stop after the last.
t = lambda k, i: by_key[k][i]["time_ms"] if by_key.get(k) else None
if by_key.get("epoch_start") and by_key.get("run_start"):
    if not (t("run_start", 0) <= t("epoch_start", 0) and t("epoch_stop", -1) <= t("run_stop", -1)):
        fail.append(f"{a.log}: the epochs are not inside run_start .. run_stop")
if fail:
    print("\n".join(fail))
    sys.exit(1)
if not have_checker:
    # The log's own checks passed; the compliance checker could not run: not a pass.
    print(f"HALO_TEST_SKIPPED: mlperf-logging is not importable by {sys.executable}; "
          f"install it with `{sys.executable} -m pip install --user mlperf-logging`")
    sys.exit(0)
print(f"{a.log}: checked ({len(lines)} lines)")
