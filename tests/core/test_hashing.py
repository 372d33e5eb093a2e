"""Seeded samples: bounded, stable, nested, independent across purposes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from songrec.core.hashing import at_most

KEYS = pd.Series([f"playlist-{i}" for i in range(200)])


def test_all_keys_when_there_are_no_more_than_the_bound() -> None:
    assert at_most(KEYS, None, 0, "training").all()
    assert at_most(KEYS, 200, 0, "training").all()


def test_exactly_the_bound_and_the_same_keys_whatever_their_order() -> None:
    mask = at_most(KEYS, 30, 0, "training")
    assert mask.sum() == 30
    shuffled = KEYS.sample(frac=1.0, random_state=1)
    again = at_most(shuffled, 30, 0, "training")
    assert set(shuffled[again]) == set(KEYS[mask])


def test_a_larger_bound_keeps_every_key_a_smaller_one_kept() -> None:
    small, large = at_most(KEYS, 20, 0, "training"), at_most(KEYS, 80, 0, "training")
    assert not (small & ~large).any()


def test_purposes_and_seeds_draw_independent_samples() -> None:
    first = at_most(KEYS, 50, 0, "training")
    assert not np.array_equal(first, at_most(KEYS, 50, 0, "evaluation"))
    assert not np.array_equal(first, at_most(KEYS, 50, 1, "training"))
