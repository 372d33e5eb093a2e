"""transform: one row per track, labels from visible memberships only, stable seeded splits."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from songrec.config.manager import ConfigurationManager
from songrec.config.stage_configs import TransformConfig
from songrec.stages.transform import majority, transform_tracks


@pytest.fixture
def config(project: Path) -> TransformConfig:
    return ConfigurationManager(project).transform()


def test_catalog_has_one_row_per_track(sample_frame: pd.DataFrame, config: TransformConfig) -> None:
    result = transform_tracks(sample_frame, config)
    assert result.catalog["track_id"].is_unique
    assert set(result.catalog["track_id"]) == set(sample_frame["track_id"])
    assert result.catalog["year"].between(1950, 2021).all()


def test_hidden_memberships_are_invisible_to_everything_models_read(
    sample_frame: pd.DataFrame, config: TransformConfig
) -> None:
    result = transform_tracks(sample_frame, config)
    hidden = result.eval_playlists[result.eval_playlists["part"] == "hidden"]
    assert len(hidden) > 0
    hidden_pairs = set(zip(hidden["track_id"], hidden["playlist_id"], strict=True))
    visible_pairs = set(zip(result.memberships["track_id"], result.memberships["playlist_id"], strict=True))
    assert not hidden_pairs & visible_pairs
    listed = result.catalog.explode("playlist_ids").dropna(subset=["playlist_ids"])
    assert not hidden_pairs & set(zip(listed["track_id"], listed["playlist_ids"], strict=True))
    # A track seen only in hidden memberships has no genre label at all.
    only_hidden = set(hidden["track_id"]) - set(result.memberships["track_id"])
    assert only_hidden
    labels = result.catalog.set_index("track_id").loc[sorted(only_hidden), "genre"]
    assert labels.isna().all()
    assert (result.catalog.set_index("track_id").loc[sorted(only_hidden), "split"] == "unlabeled").all()


def test_labels_come_from_visible_memberships(sample_frame: pd.DataFrame, config: TransformConfig) -> None:
    result = transform_tracks(sample_frame, config)
    hidden = result.eval_playlists[result.eval_playlists["part"] == "hidden"]
    # Relabel every hidden listing: no visible label may change.
    keys = sample_frame["track_id"] + "/" + sample_frame["playlist_id"]
    relabelled = sample_frame.copy()
    relabelled.loc[keys.isin(hidden["track_id"] + "/" + hidden["playlist_id"]), "playlist_genre"] = "polka"
    again = transform_tracks(relabelled, config)
    pd.testing.assert_series_equal(result.catalog["genre"], again.catalog["genre"])


def test_evaluation_share_and_holdout_share(sample_frame: pd.DataFrame, config: TransformConfig) -> None:
    result = transform_tracks(sample_frame, config)
    sizes = sample_frame.drop_duplicates(["track_id", "playlist_id"]).groupby("playlist_id").size()
    eligible = (sizes >= config.min_playlist_tracks).sum()
    assert result.eval_playlists["playlist_id"].nunique() == round(config.eval_playlist_share * eligible)
    share = (result.eval_playlists["part"] == "hidden").groupby(result.eval_playlists["playlist_id"]).mean()
    assert share.between(0.15, 0.35).all()


def test_split_is_stratified_by_genre(sample_frame: pd.DataFrame, config: TransformConfig) -> None:
    catalog = transform_tracks(sample_frame, config).catalog
    labelled = catalog[catalog["split"] != "unlabeled"]
    test_share = (labelled["split"] == "test").groupby(labelled["genre"]).mean()
    assert test_share.between(config.test_share - 0.03, config.test_share + 0.03).all()


def test_outputs_do_not_depend_on_row_order_and_follow_the_seed(
    sample_frame: pd.DataFrame, config: TransformConfig
) -> None:
    first = transform_tracks(sample_frame, config)
    shuffled = transform_tracks(sample_frame.sample(frac=1.0, random_state=3), config)
    pd.testing.assert_frame_equal(first.catalog, shuffled.catalog)
    pd.testing.assert_frame_equal(first.eval_playlists, shuffled.eval_playlists)
    reseeded = transform_tracks(sample_frame, replace(config, seed=config.seed + 1))
    assert not reseeded.eval_playlists.equals(first.eval_playlists)


def test_majority_breaks_ties_alphabetically() -> None:
    labels = pd.DataFrame(
        {"track_id": ["a", "a", "b", "b", "b"], "genre": ["rock", "pop", "rap", "rap", "edm"]}
    )
    assert majority(labels, "track_id", "genre").to_dict() == {"a": "pop", "b": "rap"}


def test_missing_column_fails_with_its_name(sample_frame: pd.DataFrame, config: TransformConfig) -> None:
    with pytest.raises(KeyError, match="playlist_id"):
        transform_tracks(sample_frame.drop(columns=["playlist_id"]), config)
