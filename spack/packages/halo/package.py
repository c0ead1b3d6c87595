# Spack recipe for Halo: distributed deep-learning training on scientific data.
#
# Every variant maps to one HALO_ENABLE_* option of Halo's top CMakeLists.txt; dependencies
# mirror the find_package() calls there. Two checks: tests/spack/check_recipe.py (ctest
# `halo_spack_recipe`, no Spack needed) and a real Spack run recorded in docs/spack.md.
#
# Where the source comes from: `git` below. A site points the recipe at its own clone or
# mirror of Halo without editing this file, in packages.yaml:
#     packages: {halo: {package_attributes: {git: "file:///path/to/halo"}}}
# or builds a working tree with `spack develop --path /path/to/halo halo@main`.
import os

from spack.package import *

try:  # Spack 1.0 and later keep the build systems in the builtin package repository
    from spack_repo.builtin.build_systems.cmake import CMakePackage
    from spack_repo.builtin.build_systems.cuda import CudaPackage
except ImportError:  # older Spack exports them from spack.package
    pass

class Halo(CMakePackage, CudaPackage):
    """Halo trains deep networks on scientific data across many nodes of a supercomputer:
    its own tensor and layer core in C++17, CPU kernels on oneDNN, BLAS and OpenMP, CUDA
    kernels, data-parallel training over MPI and parallel-HDF5 data loaders. Reference
    workloads: the MLPerf HPC CosmoFlow and DeepCAM benchmarks."""

    # The project's public repository. Sites override it (a clone, a mirror) with
    # packages.yaml `package_attributes: {git: ...}`: see docs/spack.md.
    homepage = "https://github.com/halo-hpc/halo"
    git = "https://github.com/halo-hpc/halo.git"

    # 0.1.0 = project(Halo VERSION 0.1.0). No release tarball exists, so the version is a
    # git commit: Spack checks out exactly this commit (the SHA-1 pins the whole tree).
    version("0.1.0", commit="7a10a77b245336b86d0f6d7e393379e5507d0ae8")
    version("main", branch="main")

    variant("onednn", default=True, description="CPU convolution and pooling on oneDNN")
    variant("kokkos", default=False, description="Kokkos::View interoperability (zero-copy tensors)")
    variant("examples", default=True, description="Build and install the example drivers and benchmarks")
    variant(
        "tests",
        default=False,
        description="Always build the Catch2 test suite (`spack install --test=root` builds and runs it anyway)",
    )
    variant("shared", default=False, description="Build libhalo as a shared library")
    variant("native", default=False, description="Compile for the build machine's CPU (-march=native)")

    depends_on("cmake@3.20:", type=("build", "test"))
    depends_on("c", type="build")
    depends_on("cxx", type="build")

    depends_on("mpi")
    depends_on("hdf5+mpi")
    depends_on("blas")
    depends_on("yaml-cpp")
    depends_on("nlohmann-json@3:")
    depends_on("onednn", when="+onednn")

    # The test suite: Catch2 2, and a Python with h5py and numpy (fixture files written by
    # an independent HDF5 writer, plot checks). `type="test"` brings them in only for
    # `spack install --test=root`; +tests builds the suite every time, so needs them to build.
    depends_on("catch2@2", when="+tests", type=("build", "test"))
    depends_on("catch2@2", type="test")
    for _dep in ("python@3:", "py-h5py", "py-numpy"):
        depends_on(_dep, when="+tests", type=("build", "test"))
        depends_on(_dep, type="test")

    # The CUDA backend: cuBLAS and cuDNN 9 for kernels, NCCL 2 for gradient allreduce.
    depends_on("cudnn@9", when="+cuda")
    depends_on("nccl@2", when="+cuda")
    for _arch in CudaPackage.cuda_arch_values:
        depends_on("nccl cuda_arch={0}".format(_arch), when="+cuda cuda_arch={0}".format(_arch))

    # A CUDA build of Halo wraps device Views, so Kokkos must target the same GPUs.
    depends_on("kokkos@3.4:", when="+kokkos")
    depends_on("kokkos~cuda", when="+kokkos~cuda")
    for _arch in CudaPackage.cuda_arch_values:
        depends_on(
            "kokkos+cuda+cuda_lambda+wrapper cuda_arch={0}".format(_arch),
            when="+kokkos+cuda cuda_arch={0}".format(_arch),
        )

    conflicts("+cuda", when="cuda_arch=none", msg="Halo +cuda needs a GPU target: add cuda_arch=80 or 90")

    # The stand-alone test (`spack test run halo`) builds this downstream project against
    # the installed Halo; it is cached from the source at install time.
    consumer_project = os.path.join("tests", "consumer", "project")

    def _build_tests(self):
        return self.spec.satisfies("+tests") or getattr(self, "run_tests", False)

    def cmake_args(self):
        spec = self.spec
        build_tests = self._build_tests()
        args = [
            self.define_from_variant("HALO_ENABLE_CUDA", "cuda"),
            self.define_from_variant("HALO_ENABLE_ONEDNN", "onednn"),
            self.define_from_variant("HALO_ENABLE_KOKKOS", "kokkos"),
            self.define_from_variant("HALO_ENABLE_EXAMPLES", "examples"),
            self.define("HALO_ENABLE_TESTS", build_tests),
            self.define_from_variant("HALO_NATIVE", "native"),
            self.define_from_variant("BUILD_SHARED_LIBS", "shared"),
            # Halo prefers a parallel HDF5; make it the one Spack built.
            self.define("HDF5_PREFER_PARALLEL", True),
            self.define("HDF5_ROOT", spec["hdf5"].prefix),
            self.define("MPI_CXX_COMPILER", spec["mpi"].mpicxx),
            self.define("MPI_C_COMPILER", spec["mpi"].mpicc),
        ]
        if build_tests:
            # The tests' Python is Spack's (the one with py-h5py and py-numpy), not PATH's.
            args.append(
                self.define("Python3_EXECUTABLE", os.path.join(spec["python"].prefix, "bin", "python3"))
            )
        if spec.satisfies("+cuda"):
            archs = spec.variants["cuda_arch"].value
            args.append(self.define("CMAKE_CUDA_ARCHITECTURES", ";".join(archs)))
        if spec.satisfies("+kokkos+cuda"):
            # Kokkos' CUDA builds compile C++ through its nvcc wrapper (the kokkos recipe's
            # package property, reached through this package's view of its dependency).
            args.append(self.define("CMAKE_CXX_COMPILER", self["kokkos"].kokkos_cxx))
        return args

    @run_after("install")
    def cache_consumer_project(self):
        cache_extra_test_sources(self, [self.consumer_project])

    def test_consumer(self):
        """configure, build and run tests/consumer/project against the installed Halo"""
        src = join_path(self.test_suite.current_test_cache_dir, self.consumer_project)
        if not os.path.isdir(src):
            raise SkipTest("{0} is missing: reinstall halo to cache it".format(src))
        cmake = which(self.spec["cmake"].prefix.bin.cmake)
        args = [
            "-S", src, "-B", "consumer-build",
            self.define("CMAKE_PREFIX_PATH", ";".join(get_cmake_prefix_path(self))),
        ]
        if "CXX" in os.environ:
            args.append(self.define("CMAKE_CXX_COMPILER", os.environ["CXX"]))
        cmake(*args)
        cmake("--build", "consumer-build")
        consumer = which(join_path("consumer-build", "halo-consumer"))
        out = consumer(output=str.split, error=str.split)
        assert "halo" in out.lower(), "unexpected halo-consumer output: " + out
