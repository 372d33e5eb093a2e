"""Seeded, order-independent randomness: a stable number in [0, 1) for each key.

Splits made this way do not depend on the order of the rows, and a key keeps its side of a
split when new data arrives, so yesterday's test tracks never become today's training tracks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
import pandas as pd


def stable_uniform(keys: Iterable[object], seed: int) -> np.ndarray:
    """One float in [0, 1) per key, fixed by (seed, key)."""
    salt = f"{seed}:".encode()
    values = [
        int.from_bytes(hashlib.blake2b(salt + str(key).encode(), digest_size=8).digest(), "big")
        for key in keys
    ]
    return np.asarray(values, dtype=np.float64) / float(1 << 64)


def hidden_pairs(pairs: pd.DataFrame, share: float, seed: int) -> np.ndarray:
    """Which (playlist_id, track_id) pairs a playlist continuation hides: ceil(share * size) of
    each playlist's tracks, at least one, chosen by a seeded hash of the pair.

    The evaluation split (transform) and the recommender's simulated continuations (fit) draw
    the same way, with different seeds. `pairs` has a default index and no repeated pair.
    """
    draw = stable_uniform(pairs["playlist_id"] + "/" + pairs["track_id"], seed)
    rank = pd.Series(draw).groupby(pairs["playlist_id"]).rank(method="first")
    size = pairs.groupby("playlist_id")["track_id"].transform("size")
    hidden: np.ndarray = (rank <= np.maximum(1, np.ceil(share * size))).to_numpy()
    return hidden


def at_most(keys: pd.Series | pd.Index, n: int | None, seed: int, purpose: str) -> np.ndarray:
    """A mask of at most `n` of the distinct `keys`: those whose seeded draw is lowest (all of
    them when there are no more, or `n` is None). `purpose` salts the draw, so that samples
    taken for different purposes are independent; a key's place does not depend on the others,
    so a larger `n` keeps every key a smaller one kept."""
    if n is None or len(keys) <= n:
        return np.ones(len(keys), dtype=bool)
    draw = stable_uniform((f"{purpose}/{key}" for key in keys), seed)
    mask = np.zeros(len(keys), dtype=bool)
    mask[np.argsort(draw, kind="stable")[:n]] = True
    return mask
