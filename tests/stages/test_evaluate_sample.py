"""evaluate on a large catalog: a seeded sample of whole evaluation playlists."""

from __future__ import annotations

import pandas as pd

from songrec.stages.evaluate import sampled_playlists


def playlists(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "playlist_id": [f"p{i}" for i in range(n) for _ in range(3)],
            "track_id": [f"t{i}-{j}" for i in range(n) for j in range(3)],
            "part": ["visible", "visible", "hidden"] * n,
        }
    )


def test_all_playlists_when_there_are_no_more_than_the_bound() -> None:
    eval_playlists = playlists(10)
    assert sampled_playlists(eval_playlists, 10, 42) is eval_playlists
    assert sampled_playlists(eval_playlists, None, 42) is eval_playlists


def test_a_sample_keeps_whole_playlists_and_is_the_same_each_time() -> None:
    eval_playlists = playlists(50)
    sample = sampled_playlists(eval_playlists, 12, 42)
    assert sample["playlist_id"].nunique() == 12
    assert (sample.groupby("playlist_id").size() == 3).all()
    assert sample.equals(sampled_playlists(eval_playlists, 12, 42))
    assert not sample.equals(sampled_playlists(eval_playlists, 12, 7))
