"""songrec: a reproducible, orchestrated, tracked, served and watched music recommender."""

from songrec.core.numerics import pin_openblas_kernel

pin_openblas_kernel()  # before anything imports numpy: model bytes must not depend on the CPU

__version__ = "0.1.0"
