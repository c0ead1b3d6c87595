"""Signals and dead ranks against a training driver launched with mpiexec.

  signal_faults.py stop-resume --work DIR --compare compare_checkpoints.py -- LAUNCH...
      An uninterrupted run, then the same run sent SIGUSR1 (as Slurm's --signal does) in the
      middle of epoch 2: it must write its checkpoint and exit 75 (resumable), saying so; resumed
      with --resume it must end bit-identical to the uninterrupted run.
  signal_faults.py stop-resume-one-step --work DIR --compare compare_checkpoints.py -- LAUNCH...
      The same with epochs of one step (LAUNCH sets the batch): the signal arrives during
      epoch 2's only step or its validation and must be acted on at the end of epoch 2.
  signal_faults.py killed-rank --work DIR -- LAUNCH...
      One rank is SIGKILLed mid-epoch: the job must end non-zero within 60 s (no hang), and no
      driver process may survive it.

LAUNCH is the launcher, the driver and its arguments; the script adds checkpoint.path,
output.metrics and the progress settings.
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time

PROGRESS = re.compile(r"epoch (\d+)/\d+\s+step (\d+)/(\d+)")


def run(cmd, what):
    print(f"---- {what}: {' '.join(cmd)}", flush=True)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(p.stdout, flush=True)
    if p.returncode != 0:
        sys.exit(f"{what} failed with exit status {p.returncode}")
    return p.stdout


def run_until(cmd, what, when, act, timeout):
    """Runs cmd, calls act(proc) once when(epoch, step, steps) holds for a progress line, and
    returns (exit status, output, seconds from the action to the exit)."""
    print(f"---- {what}: {' '.join(cmd)}", flush=True)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, acted_at = [], None
    deadline = time.time() + timeout
    for line in proc.stdout:
        out.append(line)
        m = PROGRESS.search(line)
        if acted_at is None and m and when(*map(int, m.groups())):
            act(proc)
            acted_at = time.time()
            print(f"---- acted after: {line.strip()}", flush=True)
        if time.time() > deadline:
            proc.kill()
            sys.exit(f"{what}: still running after {timeout} s")
    rc = proc.wait()
    text = "".join(out)
    print(text, flush=True)
    if acted_at is None:
        sys.exit(f"{what}: the run ended (status {rc}) before the moment to act came")
    return rc, text, time.time() - acted_at


def driver_pids(parent, name):
    """The processes under `parent` (any depth) whose command is `name`."""
    children = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append((int(pid), comm))
    found, todo = [], [parent]
    while todo:
        for pid, comm in children.get(todo.pop(), []):
            todo.append(pid)
            if name.startswith(comm):  # comm is cut to 15 characters
                found.append(pid)
    return found


def stop_resume(args, launch, one_step=False):
    w = args.work
    common = ["output.progress_style=plain", "output.progress_interval_s=0"]
    run(launch + common + [f"checkpoint.path={w}/full.h5", f"output.metrics={w}/full.jsonl"], "uninterrupted")
    parts = common + [f"checkpoint.path={w}/parts.h5", f"output.metrics={w}/parts.jsonl"]
    if one_step:
        when = lambda e, s, n: e == 2 and n == 1
    else:
        when = lambda e, s, n: e == 2 and 2 <= s < n - 2
    rc, text, _ = run_until(launch + parts, "signalled", when, lambda p: p.send_signal(signal.SIGUSR1), timeout=240)
    if rc != 75:
        sys.exit(f"the signalled run exited {rc}, not 75 (resumable)")
    if one_step:
        m = re.search(r"stopped by SIGUSR1 at the end of epoch (\d+)", text)
        if not m or int(m.group(1)) != 2:
            sys.exit("the signalled run did not stop at the end of epoch 2")
        where = "the end of epoch 2"
    else:
        m = re.search(r"stopped by SIGUSR1 at epoch (\d+) step (\d+)/(\d+)", text)
        if not m:
            sys.exit("the signalled run did not say it stopped by SIGUSR1")
        epoch, step, steps = map(int, m.groups())
        if not (epoch == 2 and 0 < step < steps):
            sys.exit(f"stopped at epoch {epoch} step {step}/{steps}, not in the middle of epoch 2")
        where = f"epoch {epoch} step {step}/{steps}"
    shutil.copy(f"{w}/parts.h5", f"{w}/interrupted.h5")
    run(launch + parts + ["--resume"], "resumed")
    subprocess.run([sys.executable, args.compare, f"{w}/full.h5", f"{w}/parts.h5", "--differs", f"{w}/interrupted.h5",
                    "--metrics", f"{w}/full.jsonl", f"{w}/parts.jsonl"], check=True)
    print(f"signal_faults: stopped at {where} with status 75; resumed bit-identical")


def killed_rank(args, launch):
    w = args.work
    driver = os.path.basename(next(a for a in launch if os.path.basename(a).startswith("halo-")))
    victims = []

    def kill_one(proc):
        pids = driver_pids(proc.pid, driver)
        if len(pids) < 2:
            sys.exit(f"expected the ranks of {driver} under mpiexec, found {pids}")
        victims.append(max(pids))
        os.kill(max(pids), signal.SIGKILL)
        victims.extend(pids)

    rc, _, after = run_until(launch + ["output.progress_style=plain", "output.progress_interval_s=0",
                                       f"checkpoint.path={w}/killed.h5"], "killed rank",
                             lambda e, s, n: s >= 2, kill_one, timeout=120)
    if rc == 0:
        sys.exit("the job exited 0 although one of its ranks was killed")
    if after > 60:
        sys.exit(f"the job took {after:.0f} s to end after a rank was killed")
    time.sleep(1)
    alive = [p for p in set(victims) if os.path.exists(f"/proc/{p}") and open(f"/proc/{p}/stat").read().split()[2] != "Z"]
    if alive:
        sys.exit(f"driver processes {alive} survived the job")
    print(f"signal_faults: a killed rank ended the job with status {rc} in {after:.1f} s")


def main():
    argv = sys.argv[1:]
    if "--" not in argv:
        sys.exit("usage: signal_faults.py MODE --work DIR [--compare SCRIPT] -- LAUNCH...")
    cut = argv.index("--")
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["stop-resume", "stop-resume-one-step", "killed-rank"])
    ap.add_argument("--work", required=True)
    ap.add_argument("--compare")
    args = ap.parse_args(argv[:cut])
    launch = argv[cut + 1:]
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    if args.mode == "killed-rank":
        killed_rank(args, launch)
    else:
        stop_resume(args, launch, one_step=args.mode == "stop-resume-one-step")


if __name__ == "__main__":
    main()
