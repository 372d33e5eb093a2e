"""Seeded, order-independent randomness: a stable number in [0, 1) for each key.

Splits made this way do not depend on the order of the rows, and a key keeps its side of a
split when new data arrives, so yesterday's test tracks never become today's training tracks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np


def stable_uniform(keys: Iterable[object], seed: int) -> np.ndarray:
    """One float in [0, 1) per key, fixed by (seed, key)."""
    salt = f"{seed}:".encode()
    values = [
        int.from_bytes(hashlib.blake2b(salt + str(key).encode(), digest_size=8).digest(), "big")
        for key in keys
    ]
    return np.asarray(values, dtype=np.float64) / float(1 << 64)
