#!/usr/bin/env python3
"""Keeps docs/architecture.md's description of the op tables true.

Fails (listing every problem) when:
  - src/ or include/halo/ tests a backend with the preprocessor (#if on HALO_ENABLE_CUDA,
    HALO_HAS_NCCL, HALO_ENABLE_ONEDNN, __CUDACC__ ...), or src/ names HALO_ENABLE_CUDA or
    HALO_HAS_NCCL at all: backend code lives in kernels/ and CMake picks it;
  - an op family of include/halo/ops/registry.hpp has no kernels/<backend>/<family>_ops.cpp
    for the cpu or cuda backend;
  - a file named in the "Operators" or "How to add an op" sections of the doc is missing.

usage: check_backend_layout.py <source root>
"""
import pathlib
import re
import sys

BACKEND_MACROS = r"(HALO_ENABLE_CUDA|HALO_HAS_NCCL|HALO_ENABLE_ONEDNN|__CUDACC__|__CUDA_ARCH__|CUDART_VERSION)"
PREPROCESSOR_TEST = re.compile(r"^\s*#\s*(if|ifdef|ifndef|elif)\b.*" + BACKEND_MACROS)
BUILD_FLAGS = re.compile(r"\b(HALO_ENABLE_CUDA|HALO_HAS_NCCL)\b")



def sources(root, folder):
    for p in sorted((root / folder).rglob("*")):
        if p.suffix in {".cpp", ".hpp", ".h", ".cu", ".cuh"} and p.is_file():
            yield p


def backend_ifs(root):
    problems = []
    for folder in ("src", "include/halo"):
        for p in sources(root, folder):
            rel = p.relative_to(root).as_posix()
            for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1):
                hit = PREPROCESSOR_TEST.search(line) or (folder == "src" and BUILD_FLAGS.search(line))
                if not hit:
                    continue
                problems.append(f"{rel}:{n}: backend test outside kernels/: {line.strip()}")
    return problems


def op_families(root):
    text = (root / "include/halo/ops/registry.hpp").read_text()
    m = re.search(r"enum class OpFamily\s*\{([^}]*)\}", text)
    if not m:
        return None, ["include/halo/ops/registry.hpp: no enum class OpFamily"]
    return [f.strip() for f in m.group(1).split(",") if f.strip()], []


def table_files(root, families):
    problems = []
    for backend in ("cpu", "cuda"):
        for f in families:
            p = root / "kernels" / backend / f"{f}_ops.cpp"
            if not p.is_file():
                problems.append(f"op family '{f}' has no {p.relative_to(root)}")
            elif f"register_{f}" not in p.read_text():
                problems.append(f"{p.relative_to(root)} does not define register_{f}")
        reg = (root / "kernels" / backend / "register.cpp").read_text()
        for f in families:
            if f"register_{f}(" not in reg:
                problems.append(f"kernels/{backend}/register.cpp does not call register_{f}")
    return problems


def documented_files(root, families):
    doc = (root / "docs/architecture.md").read_text()
    start = doc.find("## Operators: one entry point, kernels per backend")
    end = doc.find("## Layers")
    if start < 0 or end < 0:
        return ["docs/architecture.md: the 'Operators' section or the 'Layers' heading is missing"]
    section = doc[start:end]
    if "## How to add an op" not in section:
        return ["docs/architecture.md: no 'How to add an op' section after 'Operators'"]
    problems = []
    for path in sorted(set(re.findall(r"`((?:src|include|kernels|tests|docs)/[^`\s]+)`", section))):
        if "foo" in path or "*" in path or "<" in path:
            # A pattern over the families (foo_ops.cpp, *_ops.cpp): every family must fit it
            # where the pattern is one of the table files checked above.
            continue
        if not (root / path).exists():
            problems.append(f"docs/architecture.md names {path}, which does not exist")
    return problems


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    problems = backend_ifs(root)
    families, fam_problems = op_families(root)
    problems += fam_problems
    if families:
        problems += table_files(root, families)
    problems += documented_files(root, families or [])
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} problem(s): see docs/architecture.md, 'How to add an op'")
        return 1
    print(f"backend layout ok: {len(families)} op families with cpu and cuda tables, no backend #if outside kernels/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
