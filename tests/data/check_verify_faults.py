#!/usr/bin/python3
"""halo-data verify on the fault fixtures (write_fixtures.py, write_faults): files whose shapes
differ from the format or from the first file, and NaN / negative-count samples, are reported
with file, dataset and reason, the good files are not, and the exit status is 1.
Usage: check_verify_faults.py HALO_DATA FIXTURES"""
import glob
import os
import subprocess
import sys


def verify(tool, files):
    p = subprocess.run([tool, "verify"] + files, capture_output=True, text=True)
    print(p.stdout + p.stderr)
    return p.returncode, [l for l in p.stdout.splitlines() if l.startswith("BAD ")]


def main(tool, fx):
    f = os.path.join(fx, "fault")
    shapes = sorted(glob.glob(os.path.join(f, "shapes", "*.h5")))
    rc, bad = verify(tool, shapes)
    assert rc == 1, f"verify exited {rc} on mismatched shapes"
    assert any("b_small_x.h5" in l and "'x'" in l and "a_good_0.h5" in l for l in bad), "4^3 file not reported"
    assert any("c_short_y.h5" in l and "'y'" in l and "(4,)" in l for l in bad), "(3,) targets not reported"
    assert not any("a_good_" in l.split(":")[0] for l in bad), "a good file was reported"
    # each file alone is checked against the format: the short targets still fail
    rc, bad = verify(tool, [os.path.join(f, "shapes", "c_short_y.h5")])
    assert rc == 1 and bad, "(3,) targets pass on their own"
    for d, dataset, what, sample_file in [("cosmo_nan_x", "'x'", "NaN", "cosmo_2.h5"),
                                          ("cosmo_negative", "'x'", "negative count", "cosmo_1.h5"),
                                          ("cosmo_nan_y", "'y'", "NaN", "cosmo_3.h5"),
                                          ("deepcam_nan", "'climate/data'", "NaN", "data-1.h5")]:
        files = sorted(glob.glob(os.path.join(f, d, "*.h5")))
        files = [x for x in files if not x.endswith("stats.h5")]
        rc, bad = verify(tool, files)
        assert rc == 1, f"{d}: verify exited {rc}"
        assert len(bad) == 1 and sample_file in bad[0] and dataset in bad[0] and what in bad[0], f"{d}: {bad}"
    print("verify reports every fault")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
