"""One numerical kernel on every x86-64 machine, so a model's bytes do not depend on the CPU.

OpenBLAS picks its kernels by CPU model (SkylakeX on an AVX-512 server, Zen or Haswell on
others). Their results differ in the last bits, and so do the fitted mixtures, the logistic
ranker and every model file and `dvc.lock` hash after them: a fresh clone on another machine
would not reproduce the committed lock. Pinning the Haswell kernels (AVX2 + FMA, which every
x86-64 server of the last decade has) makes the pipeline's outputs byte-identical across them.
The variable is read when OpenBLAS loads, so this runs before numpy is imported.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

OPENBLAS_KERNEL = "Haswell"


def pin_openblas_kernel() -> str | None:
    """Set OPENBLAS_CORETYPE unless the user did or the CPU lacks AVX2/FMA; the kernel in use."""
    if "OPENBLAS_CORETYPE" in os.environ:
        return os.environ["OPENBLAS_CORETYPE"]
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    try:
        flags = next(
            (line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")),
            "",
        ).split()
    except OSError:
        return None
    if "avx2" not in flags or "fma" not in flags:
        return None
    os.environ["OPENBLAS_CORETYPE"] = OPENBLAS_KERNEL
    return OPENBLAS_KERNEL
