# Spack recipe for Halo: distributed deep-learning training on scientific data.
#
# Every variant maps to one HALO_ENABLE_* option of Halo's top CMakeLists.txt (checked by
# spack/test_package.py); dependencies mirror the find_package() calls there.
import os

from spack.package import *

try:  # Spack 1.0 and later keep the build systems in the builtin package repository
    from spack_repo.builtin.build_systems.cmake import CMakePackage
    from spack_repo.builtin.build_systems.cuda import CudaPackage
except ImportError:  # older Spack exports them from spack.package
    pass


def _halo_source_root():
    """The Halo clone this repository lives in (spack/packages/halo/ is three levels down)."""
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.normpath(os.path.join(here, "..", "..", ".."))


class Halo(CMakePackage, CudaPackage):
    """Halo trains deep networks on scientific data across many nodes of a supercomputer:
    its own tensor and layer core in C++17, CPU kernels on oneDNN, BLAS and OpenMP, CUDA
    kernels, data-parallel training over MPI and parallel-HDF5 data loaders. Reference
    workloads: the MLPerf HPC CosmoFlow and DeepCAM benchmarks."""

    # Versions come from the git history of the clone holding this Spack repository, so
    # `spack install halo@main` builds exactly what that clone has committed on main.
    git = "file://" + _halo_source_root()

    version("main", branch="main", preferred=True)

    variant("onednn", default=True, description="CPU convolution and pooling on oneDNN")
    variant("kokkos", default=False, description="Kokkos::View interoperability (zero-copy tensors)")
    variant("examples", default=True, description="Build and install the example drivers and benchmarks")
    variant("tests", default=False, description="Build the Catch2 test suite (run with `spack install --test=root`)")
    variant("shared", default=False, description="Build libhalo as a shared library")
    variant("native", default=False, description="Compile for the build machine's CPU (-march=native)")

    depends_on("cmake@3.20:", type="build")
    depends_on("c", type="build")
    depends_on("cxx", type="build")

    depends_on("mpi")
    depends_on("hdf5+mpi")
    depends_on("blas")
    depends_on("yaml-cpp")
    depends_on("nlohmann-json@3:")
    depends_on("onednn", when="+onednn")
    depends_on("catch2@2", when="+tests", type=("build", "test"))

    # The CUDA backend: cuBLAS and cuDNN for kernels, NCCL for gradient allreduce.
    depends_on("cudnn", when="+cuda")
    depends_on("nccl", when="+cuda")
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

    def cmake_args(self):
        spec = self.spec
        args = [
            self.define_from_variant("HALO_ENABLE_CUDA", "cuda"),
            self.define_from_variant("HALO_ENABLE_ONEDNN", "onednn"),
            self.define_from_variant("HALO_ENABLE_KOKKOS", "kokkos"),
            self.define_from_variant("HALO_ENABLE_EXAMPLES", "examples"),
            self.define_from_variant("HALO_ENABLE_TESTS", "tests"),
            self.define_from_variant("HALO_NATIVE", "native"),
            self.define_from_variant("BUILD_SHARED_LIBS", "shared"),
            # Halo prefers a parallel HDF5; make it the one Spack built.
            self.define("HDF5_PREFER_PARALLEL", True),
            self.define("HDF5_ROOT", spec["hdf5"].prefix),
            self.define("MPI_CXX_COMPILER", spec["mpi"].mpicxx),
            self.define("MPI_C_COMPILER", spec["mpi"].mpicc),
        ]
        if spec.satisfies("+cuda"):
            archs = spec.variants["cuda_arch"].value
            args.append(self.define("CMAKE_CUDA_ARCHITECTURES", ";".join(archs)))
        if spec.satisfies("+kokkos+cuda"):
            # Kokkos' CUDA builds compile C++ through its nvcc wrapper (set by the kokkos recipe).
            args.append(self.define("CMAKE_CXX_COMPILER", spec["kokkos"].kokkos_cxx))
        return args
