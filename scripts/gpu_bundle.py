#!/usr/bin/env python3
"""Packs what scripts/gpu-check.sh runs on a GPU machine into one archive.

The GPU machine has the CUDA toolkit, cuDNN, NCCL, CMake and Python but none of Halo's Debian
dependencies, and it cannot download anything. So the archive holds, from a CUDA build made
here (./scripts/setup.sh):

  build/     the executables the `gpu`-labelled tests and the GPU benchmarks run, at their
             places in the build tree, and every CTestTestfile.cmake (gpu-check.sh points
             their paths at the machine's folders);
  lib/       every shared library those programs and Open MPI load, except the C library's
             and the CUDA libraries (the GPU machine's own, found there);
  fallback/  libstdc++ and libgcc_s, used only where the machine's are older than these;
  root/      Open MPI and PMIx as the Debian packages install them (mpiexec, plugins, help
             texts), moved by gpu-check.sh's OPAL_* / PMIX_* variables;
  manifest.env  the paths and versions the build was made with.

Usage: gpu_bundle.py BUILD_DIR SOURCE_DIR OUT_DIR [XZ_PRESET]
XZ_PRESET: 6 (the default; 9 saves little: most of the size is oneDNN and OpenBLAS) down to 0,
an uncompressed tar (for rehearsals).
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time

# Loaded from the machine itself: the C library, the GPU driver and the CUDA libraries (their
# versions must match the driver there; cuDNN and NCCL come with the CUDA image).
SYSTEM = re.compile(r"^(ld-linux.*|linux-vdso.*|libc|libm|libdl|libpthread|librt|libresolv|libutil|libcuda|"
                    r"libcudart|libcublas|libcublasLt|libcudnn.*|libnccl|libnvrtc.*|libnvJitLink)\.so")
FALLBACK = re.compile(r"^(libstdc\+\+|libgcc_s)\.so")
# Open MPI and the PMIx it runs on: plugins and data files are found by path, not by the
# loader, so the packages' files travel whole.
MPI_PACKAGES = ["openmpi-bin", "openmpi-common", "libopenmpi3", "libpmix2"]
# The GPU benchmarks gpu-check.sh runs beside the tests.
BENCHMARKS = ["halo-bench-cosmoflow", "halo-bench-cosmoflow-gpu", "halo-bench-conv", "halo-bench-cudnn-conv"]


def is_elf(path):
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def gpu_test_programs(build):
    """Build-tree programs the `gpu` tests run (named anywhere in their command lines)."""
    out = subprocess.run(["ctest", "--show-only=json-v1", "-L", "^gpu$"], cwd=build, check=True,
                         capture_output=True, text=True).stdout
    tests = json.loads(out)["tests"]
    if not tests:
        sys.exit(f"gpu_bundle: {build} has no gpu-labelled tests: is it a CUDA build (./scripts/setup.sh)?")
    found = set()
    pattern = re.compile(re.escape(build.rstrip("/")) + r"/[^\s;|\"']+")
    for t in tests:
        for arg in t.get("command", []):
            for p in pattern.findall(arg):
                if os.path.isfile(p) and os.access(p, os.X_OK) and is_elf(p):
                    found.add(p)
    return sorted(found), [t["name"] for t in tests]


def ctest_files(build):
    """The CTestTestfile.cmake files ctest reads: the build's, and those its subdirs() name."""
    found, todo = [], [build]
    while todo:
        f = os.path.join(todo.pop(), "CTestTestfile.cmake")
        if not os.path.isfile(f):
            continue
        found.append(f)
        for sub in re.findall(r'^subdirs\("([^"]+)"\)', open(f).read(), re.M):
            todo.append(sub if os.path.isabs(sub) else os.path.join(os.path.dirname(f), sub))
    return found


def find_benchmarks(build):
    found = []
    for name in BENCHMARKS:
        hits = [os.path.join(d, name) for d, _, files in os.walk(os.path.join(build, "examples")) if name in files]
        if not hits:
            sys.exit(f"gpu_bundle: {name} is not built in {build}/examples (cmake --build {build} --target {name})")
        found.append(sorted(hits, key=len)[0])
    return found


def needed_libraries(elf_files):
    """name -> resolved path of every shared library the files load (ldd's transitive list)."""
    libs, missing = {}, []
    for f in elf_files:
        r = subprocess.run(["ldd", f], capture_output=True, text=True)
        if r.returncode != 0:
            continue  # not dynamic (a static helper, a data file named .so)
        for line in r.stdout.splitlines():
            m = re.match(r"\s*(\S+) => (\S+)", line)
            if not m:
                continue
            name, path = m.groups()
            if path == "not":
                missing.append(f"{f}: {name}")
            else:
                libs.setdefault(name, path)
    if missing:
        sys.exit("gpu_bundle: libraries not found here, so they cannot travel:\n  " + "\n  ".join(missing))
    return libs


def package_files(package):
    out = subprocess.run(["dpkg-query", "-L", package], check=True, capture_output=True, text=True).stdout
    return [p for p in out.splitlines() if p and not p.startswith("/usr/share/doc") and not p.startswith("/usr/share/man")
            and os.path.lexists(p) and not os.path.isdir(p)]


def copy_keeping_links(src, dst):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    if os.path.islink(src):
        os.symlink(os.readlink(src), dst)
    else:
        shutil.copy2(src, dst)


def cached(cache, key, default):
    m = re.search(r"^" + key + r":\w+=(.*)$", cache, re.M)
    return m.group(1) if m else default


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    build, source, out = (os.path.realpath(a) for a in sys.argv[1:4])
    preset = int(sys.argv[4]) if len(sys.argv) == 5 else 6
    stage = os.path.join(out, "stage")
    shutil.rmtree(stage, ignore_errors=True)
    os.makedirs(stage)

    programs, tests = gpu_test_programs(build)
    programs += find_benchmarks(build)
    for p in programs:
        copy_keeping_links(p, os.path.join(stage, "build", os.path.relpath(p, build)))
    for f in ctest_files(build):
        copy_keeping_links(f, os.path.join(stage, "build", os.path.relpath(f, build)))

    mpi_files = [f for pkg in MPI_PACKAGES for f in package_files(pkg)]
    for f in mpi_files:
        copy_keeping_links(f, os.path.join(stage, "root", f.lstrip("/")))

    elf = [p for p in programs] + [f for f in mpi_files if not os.path.islink(f) and is_elf(f)]
    libs = needed_libraries(elf)
    mpi_set = {os.path.realpath(f) for f in mpi_files}
    bundled = []
    for name, path in sorted(libs.items()):
        if SYSTEM.match(name) or os.path.realpath(path) in mpi_set:
            continue
        dest = os.path.join(stage, "fallback" if FALLBACK.match(name) else "lib")
        os.makedirs(dest, exist_ok=True)
        shutil.copy2(os.path.realpath(path), os.path.join(dest, name))
        bundled.append(name)

    def version_of(pkg):
        return subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True).stdout

    commit = subprocess.run(["git", "-C", source, "describe", "--always", "--dirty"], capture_output=True,
                            text=True).stdout.strip()
    cache = open(os.path.join(build, "CMakeCache.txt")).read()
    manifest = {
        "BUILD_DIR": build,
        "SOURCE_DIR": source,
        "MPIEXEC": shutil.which("mpiexec") or "/usr/bin/mpiexec",
        "PYTHON": cached(cache, "HALO_TEST_PYTHON_USED", "/usr/bin/python3"),
        "CMAKE": cached(cache, "CMAKE_COMMAND", "/usr/bin/cmake"),
        "COMMIT": commit,
        "PACKED": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "CUDA_ARCHITECTURES": cached(cache, "CMAKE_CUDA_ARCHITECTURES", "?"),
        "OPENMPI": version_of("libopenmpi3"),
        "GPU_TESTS": str(len(tests)),
        "CUDA_SONAMES": " ".join(sorted(n for n in libs if SYSTEM.match(n) and n.startswith(("libcu", "libnccl")))),
    }
    with open(os.path.join(stage, "manifest.env"), "w") as f:
        for k, v in manifest.items():
            f.write(f"{k}='{v}'\n")

    archive = os.path.join(out, "halo-gpu-bundle.tar" + (".xz" if preset > 0 else ""))
    for old in ("halo-gpu-bundle.tar", "halo-gpu-bundle.tar.xz"):
        if os.path.exists(os.path.join(out, old)):
            os.remove(os.path.join(out, old))
    with tarfile.open(archive + ".part", "w:xz", preset=preset) if preset > 0 else tarfile.open(archive + ".part", "w") as t:
        t.add(stage, arcname=".")
    os.replace(archive + ".part", archive)
    shutil.rmtree(stage)
    print(f"gpu_bundle: {len(programs)} programs ({len(tests)} gpu tests), {len(bundled)} libraries, "
          f"{len(mpi_files)} Open MPI/PMIx files -> {archive} ({os.path.getsize(archive) / 2**20:.1f} MiB)")
    print("gpu_bundle: the CUDA libraries come from the GPU machine: " + manifest["CUDA_SONAMES"])


if __name__ == "__main__":
    main()
