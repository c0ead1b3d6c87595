#!/usr/bin/env python3
"""Checks spack/packages/halo/package.py without Spack: the recipe runs against stand-ins for
the `spack.package` directives, then every variant must reach a real option of Halo's top
CMakeLists.txt and every HALO_ENABLE_* option there must have a variant.

Usage: check_recipe.py <halo source dir>. Exits non-zero with one line per problem.
"""
import importlib.util
import itertools
import re
import sys
import types

# CMake variables the recipe may set besides Halo's own options.
STANDARD_CMAKE_VARIABLES = {
    "BUILD_SHARED_LIBS", "CMAKE_CUDA_ARCHITECTURES", "CMAKE_CXX_COMPILER",
    "HDF5_PREFER_PARALLEL", "HDF5_ROOT", "MPI_CXX_COMPILER", "MPI_C_COMPILER",
    "Python3_EXECUTABLE",
}
CUDA_ARCHS = ("none", "70", "80", "90")


class Recorder:
    """Collects what the directives declare, in order."""

    def __init__(self):
        self.variants = {}
        self.versions = []
        self.depends = []
        self.conflicts = []


REC = Recorder()


def _variant(name, default=None, description="", values=None, multi=False, **_):
    if not description:
        raise ValueError("variant %r has no description" % name)
    REC.variants[name] = {"default": default, "values": values, "multi": multi}


def _version(name, **kwargs):
    REC.versions.append((name, kwargs))


def _depends_on(spec, when=None, type=None, **_):
    REC.depends.append((spec, when, type))


def _conflicts(spec, when=None, msg=None):
    REC.conflicts.append((spec, when, msg))


class _Package:
    run_tests = False

    def __getitem__(self, name):  # the package's view of a dependency (self["kokkos"])
        return _Dep()

    def define(self, name, value):
        if isinstance(value, bool):
            return "-D%s:BOOL=%s" % (name, "ON" if value else "OFF")
        if isinstance(value, (list, tuple)):
            value = ";".join(str(v) for v in value)
        return "-D%s:STRING=%s" % (name, value)

    def define_from_variant(self, name, variant):
        if variant not in self.spec.variants:
            raise KeyError("define_from_variant(%r, %r): no such variant" % (name, variant))
        return self.define(name, self.spec.variants[variant].value)


class _CudaPackage(_Package):
    cuda_arch_values = CUDA_ARCHS[1:]


def _install_stubs():
    spack = types.ModuleType("spack")
    pkg = types.ModuleType("spack.package")
    names = {
        "CMakePackage": type("CMakePackage", (_Package,), {}),
        "CudaPackage": _CudaPackage,
        "variant": _variant, "version": _version, "depends_on": _depends_on,
        "conflicts": _conflicts,
        # Directives and helpers the checker does not look at.
        "maintainers": lambda *a, **k: None, "license": lambda *a, **k: None,
        "run_after": lambda *a, **k: (lambda f: f),
        "on_package_attributes": lambda *a, **k: (lambda f: f),
    }
    for k, v in names.items():
        setattr(pkg, k, v)
    pkg.__all__ = list(names)
    spack.package = pkg
    sys.modules["spack"] = spack
    sys.modules["spack.package"] = pkg
    # What CudaPackage itself declares in Spack.
    _variant("cuda", default=False, description="Build with CUDA")
    _variant("cuda_arch", default="none", description="CUDA architecture", values=CUDA_ARCHS, multi=True)


class _Value:
    def __init__(self, value):
        self.value = value


class _Dep:
    prefix = "/opt/dep"
    mpicc = "/opt/mpi/bin/mpicc"
    mpicxx = "/opt/mpi/bin/mpicxx"
    kokkos_cxx = "/opt/kokkos/bin/nvcc_wrapper"


class FakeSpec:
    """Enough of a concrete spec for cmake_args(): variant values and satisfies()."""

    def __init__(self, values):
        self.variants = {k: _Value(v) for k, v in values.items()}

    def __getitem__(self, name):
        return _Dep()

    def satisfies(self, constraint):
        for tok in constraint.split():
            for part in re.findall(r"[+~][A-Za-z0-9_]+|[A-Za-z0-9_]+=[^\s+~]+", tok):
                if part[0] in "+~":
                    name = part[1:]
                    want = part[0] == "+"
                    if bool(self.variants[name].value) != want:
                        return False
                else:
                    name, val = part.split("=", 1)
                    have = self.variants[name].value
                    have = have if isinstance(have, (list, tuple)) else (have,)
                    if val not in have:
                        return False
        return True


def check_spec_variants(spec_text, where, problems, own=True):
    """Every +v/~v/v=x in a when= (or in a constraint on Halo itself) names a declared variant."""
    if spec_text is None:
        return
    for part in re.findall(r"(?:^|\s|(?<=[\w)]))([+~][A-Za-z0-9_]+|[A-Za-z0-9_]+=\S+)", spec_text):
        name = part[1:] if part[0] in "+~" else part.split("=", 1)[0]
        if own and name not in REC.variants:
            problems.append("%s: %r names no variant of halo" % (where, part))


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    problems = []
    _install_stubs()
    path = root + "/spack/packages/halo/package.py"
    spec = importlib.util.spec_from_file_location("halo_spack_recipe", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    halo = getattr(module, "Halo", None)
    if halo is None:
        print("package.py defines no class Halo")
        return 1
    if not issubclass(halo, sys.modules["spack.package"].CMakePackage):
        problems.append("Halo is not a CMakePackage")
    if not issubclass(halo, _CudaPackage):
        problems.append("Halo is not a CudaPackage (no cuda / cuda_arch variants)")
    if not REC.versions:
        problems.append("no version() declared")
    if not (getattr(halo, "git", None) or getattr(halo, "url", None)):
        problems.append("neither git nor url is set: versions cannot be fetched")

    for required in ("cuda", "cuda_arch", "onednn", "kokkos", "examples", "tests"):
        if required not in REC.variants:
            problems.append("variant %r is missing" % required)
    deps = {(d.split()[0], w) for d, w, _ in REC.depends}
    for dep, when in (("mpi", None), ("blas", None), ("hdf5+mpi", None), ("onednn", "+onednn"),
                      ("kokkos@3.4:", "+kokkos"), ("catch2@2", "+tests")):
        if (dep, when) not in deps:
            problems.append("depends_on(%r%s) is missing" % (dep, ", when=%r" % when if when else ""))
    for d, w, _ in REC.depends:
        check_spec_variants(w, "depends_on(%r) when" % d, problems)
    for c, w, _ in REC.conflicts:
        check_spec_variants(c, "conflicts(%r)" % c, problems)
        check_spec_variants(w, "conflicts(%r) when" % c, problems)

    cmake_text = open(root + "/CMakeLists.txt").read()
    options = set(re.findall(r"^\s*option\(\s*(HALO_[A-Z0-9_]+)", cmake_text, re.M))
    # Optional features are AUTO|ON|OFF cache entries declared by halo_feature(<NAME> ...).
    options |= {"HALO_ENABLE_" + f for f in re.findall(r"^\s*halo_feature\(\s*([A-Z0-9_]+)", cmake_text, re.M)}
    enable_options = {o for o in options if o.startswith("HALO_ENABLE_")}

    # cmake_args() over every combination of the boolean variants (cuda_arch=90 with +cuda).
    bools = [n for n, v in REC.variants.items() if isinstance(v["default"], bool)]
    runs = []
    for combo in itertools.product((False, True), repeat=len(bools)):
        values = dict(zip(bools, combo))
        values["cuda_arch"] = ("90",) if values.get("cuda") else ("none",)
        recipe = halo.__new__(halo)
        recipe.spec = FakeSpec(values)
        args = recipe.cmake_args()
        runs.append((values, args))
        for arg in args:
            m = re.match(r"-D([A-Za-z0-9_]+)(?::[A-Z]+)?=(.*)$", arg)
            if not m:
                problems.append("cmake_args gives %r, not -DNAME=VALUE" % arg)
            elif m.group(1) not in options and m.group(1) not in STANDARD_CMAKE_VARIABLES:
                problems.append("cmake_args sets %s, which CMakeLists.txt does not define" % m.group(1))
        arch_args = [a for a in args if a.startswith("-DCMAKE_CUDA_ARCHITECTURES")]
        if values["cuda"] and arch_args != ["-DCMAKE_CUDA_ARCHITECTURES:STRING=90"]:
            problems.append("cuda_arch=90 gives %r, expected CMAKE_CUDA_ARCHITECTURES=90" % arch_args)

    # A variant maps to a CMake name when that name is set to the variant's value in every run.
    for var in bools:
        targets = set(options) | STANDARD_CMAKE_VARIABLES
        for values, args in runs:
            targets = {t for t in targets if _Package().define(t, values[var]) in args}
        if not targets:
            problems.append("variant %r reaches no CMake option" % var)
        elif not targets & (options | {"BUILD_SHARED_LIBS"}):
            problems.append("variant %r reaches only %s, not a Halo option" % (var, sorted(targets)))
    for opt in sorted(enable_options):
        var = opt[len("HALO_ENABLE_"):].lower()
        if var not in REC.variants:
            problems.append("CMake option %s has no Spack variant %r" % (opt, var))

    problems = list(dict.fromkeys(problems))  # one line per distinct problem, in order
    for p in problems:
        print("spack recipe: " + p)
    if not problems:
        print("spack recipe: %d variants, %d dependencies, all variants map to CMake options %s"
              % (len(REC.variants), len(REC.depends), sorted(enable_options)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
