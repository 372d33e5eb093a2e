"""Synthetic playlist data: the contract, the shape of real playlist data, and determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from songrec.config.manager import ConfigurationManager
from songrec.contract.features import release_year
from songrec.contract.schema import DataSchema
from songrec.contract.synthetic import Catalog, Templates, build_catalog, templates_from
from songrec.contract.synthetic_playlists import MAX_LENGTH, MIN_LENGTH, synthetic_tables
from songrec.contract.validation import validate_tracks
from songrec.core.io import write_csv_gz
from tests.conftest import ROOT, SOURCE

PLAYLISTS = 1500


@pytest.fixture(scope="module")
def schema() -> DataSchema:
    return ConfigurationManager(ROOT).schema


@pytest.fixture(scope="module")
def templates(schema: DataSchema) -> Templates:
    return templates_from(pd.read_csv(SOURCE), schema)


@pytest.fixture(scope="module")
def catalog(templates: Templates, schema: DataSchema) -> Catalog:
    return build_catalog(templates, PLAYLISTS, schema, seed=3)


@pytest.fixture(scope="module")
def rows(catalog: Catalog, schema: DataSchema) -> pd.DataFrame:
    return pa.concat_tables(synthetic_tables(catalog, PLAYLISTS, schema)).to_pandas()


def test_meets_the_contract_with_every_row(rows: pd.DataFrame, schema: DataSchema) -> None:
    result = validate_tracks(rows, schema, max_quarantined_share=0.0)
    assert result.passed, result.report["problems"]
    assert result.report["quarantined_rows"] == 0
    assert list(rows.columns) == list(schema.column_names)


def test_playlist_lengths_are_those_of_the_mpd(rows: pd.DataFrame) -> None:
    lengths = rows.groupby("playlist_id").size()
    assert len(lengths) == PLAYLISTS
    assert lengths.between(MIN_LENGTH, MAX_LENGTH).all()
    assert 60 <= lengths.mean() <= 72  # the MPD: 66
    assert lengths.median() < lengths.mean()  # skewed: many short playlists, a few long ones
    assert not rows.duplicated(["playlist_id", "track_id"]).any()


def test_track_popularity_has_a_heavy_tail(rows: pd.DataFrame) -> None:
    playlists_per_track = rows["track_id"].value_counts()
    assert (playlists_per_track <= 2).mean() > 0.5  # most tracks in one or two playlists
    assert playlists_per_track.max() >= 50 * playlists_per_track.median()  # a few in very many
    # The popularity column follows how often a track is listed.
    popularity = rows.groupby("track_id")["track_popularity"].first()
    assert popularity.corr(playlists_per_track.reindex(popularity.index), method="spearman") > 0.3


def test_artists_and_albums_hold_many_tracks_and_playlists_mix_artists(rows: pd.DataFrame) -> None:
    tracks = rows.drop_duplicates("track_id")
    per_artist = tracks.groupby("track_artist").size()
    assert per_artist.max() >= 20 and per_artist.mean() > 2
    assert tracks.groupby("track_album_id").size().mean() > 1.2
    # Real playlists repeat some artists and mix many (shipped: 0.67 distinct artists a track).
    playlists = rows.groupby("playlist_id").agg(n=("track_id", "size"), artists=("track_artist", "nunique"))
    assert 0.4 < (playlists["artists"] / playlists["n"]).mean() < 0.95
    # An artist keeps to its genre: most of an artist's rows are in one genre.
    main_genre = rows.groupby("track_artist")["playlist_genre"].agg(
        lambda g: g.value_counts(normalize=True).iloc[0]
    )
    assert main_genre.mean() > 0.7


def test_genre_can_be_learned_from_the_features(rows: pd.DataFrame, schema: DataSchema) -> None:
    """A track's majority playlist genre, as transform labels it, follows from its features."""
    from sklearn.ensemble import RandomForestClassifier

    genre = rows.groupby("track_id")["playlist_genre"].agg(lambda g: g.value_counts().index[0])
    tracks = rows.drop_duplicates("track_id").set_index("track_id").loc[genre.index]
    features = tracks[list(schema.audio_features)].assign(
        year=release_year(tracks["track_album_release_date"])
    )
    half = np.arange(len(genre)) % 2 == 0
    model = RandomForestClassifier(n_estimators=30, min_samples_leaf=5, random_state=0, n_jobs=1)
    model.fit(features[half], genre[half])
    accuracy = (model.predict(features[~half]) == genre[~half]).mean()
    chance = genre[~half].value_counts(normalize=True).iloc[0]
    assert accuracy > chance + 0.2, (accuracy, chance)


def test_the_same_seed_gives_the_same_bytes(templates: Templates, schema: DataSchema, tmp_path: Path) -> None:
    def write(seed: int, name: str) -> bytes:
        catalog = build_catalog(templates, 300, schema, seed)
        write_csv_gz(synthetic_tables(catalog, 300, schema), tmp_path / name)
        return (tmp_path / name).read_bytes()

    first = write(5, "a.csv.gz")
    assert write(5, "b.csv.gz") == first
    assert write(6, "c.csv.gz") != first
    assert pd.read_csv(tmp_path / "a.csv.gz")["playlist_id"].nunique() == 300
