"""Fixtures and helpers the recommender tests share: the sample project's processed data, its
largest visible playlist, and the re-ranker's candidates for it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from songrec.config.manager import ConfigurationManager
from songrec.models.bundle import SongrecBundle
from songrec.models.recommender.base import Playlist
from songrec.models.recommender.hybrid import HybridRecommender
from songrec.models.recommender.reranker import candidate_features


@pytest.fixture(scope="module")
def data(trained_project: Path) -> dict[str, pd.DataFrame]:
    config = ConfigurationManager(trained_project).transform()
    return {
        "catalog": pd.read_parquet(config.catalog),
        "memberships": pd.read_parquet(config.memberships),
        "eval": pd.read_parquet(config.eval_playlists),
    }


def a_playlist(data: dict[str, pd.DataFrame], size: int = 12) -> list[str]:
    """The first track ids of the largest visible playlist."""
    members = data["memberships"]
    playlist = members.groupby("playlist_id").size().sort_values().index[-1]
    return members.loc[members["playlist_id"] == playlist, "track_id"].head(size).tolist()


def reranked(
    bundle: SongrecBundle, data: dict[str, pd.DataFrame], size: int = 15
) -> tuple[HybridRecommender, Playlist, np.ndarray, np.ndarray, np.ndarray]:
    """A playlist's linear scores, and the re-ranker's candidates with their features."""
    recommender = bundle.recommender
    assert isinstance(recommender, HybridRecommender)
    playlist = Playlist(positions=recommender.index_.track_ids.get_indexer(a_playlist(data, size)))
    linear = recommender.index_.weighted_score(playlist, recommender.weights_)
    candidates, features = candidate_features(
        recommender.index_,
        playlist,
        linear,
        recommender.candidates_per_playlist,
        n_co_listened=recommender.co_listened_candidates,
    )
    return recommender, playlist, linear, candidates, features
