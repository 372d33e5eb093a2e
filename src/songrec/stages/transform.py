"""transform: turn validated playlist listings into a catalog, a split and evaluation playlists.

Reads data/validated/tracks.parquet and writes, to data/processed/:
- catalog.parquet: one row per track, with its majority playlist genre and subgenre (from
  the memberships that stay visible only), release year, the playlists it is visibly in, and
  its side of the genre/popularity split (train, test, or unlabeled);
- memberships.parquet: the visible (track, playlist) memberships, all that models learn from;
- eval_playlists.parquet: the evaluation playlists, each track marked visible or hidden.

Every random choice is a seeded hash of a key (hashing.stable_uniform), so the outputs do not
depend on row order and stay stable when new data arrives.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from songrec.config.manager import ConfigurationManager
from songrec.config.stage_configs import TransformConfig
from songrec.contract.features import release_year
from songrec.contract.schema import DataSchema
from songrec.core.hashing import hidden_pairs, stable_uniform
from songrec.core.io import atomic_dir, read_parquet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TransformResult:
    catalog: pd.DataFrame
    memberships: pd.DataFrame
    eval_playlists: pd.DataFrame


# --------------------------------------------------------------------------- pure core


def build_listings(tracks: pd.DataFrame, schema: DataSchema) -> pd.DataFrame:
    """Playlist listings: one row per (track, playlist, subgenre) with the playlist's labels."""
    return pd.DataFrame(
        {
            "track_id": tracks["track_id"],
            "playlist_id": tracks["playlist_id"],
            "playlist_name": tracks["playlist_name"],
            "genre": tracks[schema.genre_target],
            "subgenre": tracks["playlist_subgenre"],
        }
    )


def eligible_playlists(listings: pd.DataFrame, config: TransformConfig) -> pd.Index:
    """The playlists big enough to hide part of, in a seeded order (the first are evaluated)."""
    sizes = listings.drop_duplicates(["track_id", "playlist_id"]).groupby("playlist_id").size()
    eligible = sizes[sizes >= config.min_playlist_tracks].index.sort_values()
    return eligible[np.argsort(stable_uniform(eligible, config.seed), kind="stable")]


def select_eval_playlists(listings: pd.DataFrame, config: TransformConfig) -> pd.Index:
    """A fixed, seeded share of the playlists big enough to hide part of."""
    eligible = eligible_playlists(listings, config)
    return eligible[: round(config.eval_playlist_share * len(eligible))].sort_values()


def hold_out_tracks(listings: pd.DataFrame, eval_ids: pd.Index, config: TransformConfig) -> pd.DataFrame:
    """The (track, playlist) pairs of the evaluation playlists, each marked visible or hidden.

    Each playlist hides ceil(holdout_share * size) of its tracks (at least one), picked by a
    seeded hash of (playlist, track).
    """
    pairs = (
        listings.loc[listings["playlist_id"].isin(eval_ids), ["playlist_id", "track_id"]]
        .drop_duplicates()
        .reset_index(drop=True)
    )
    part = np.where(hidden_pairs(pairs, config.holdout_share, config.seed), "hidden", "visible")
    return pairs.assign(part=part).sort_values(["playlist_id", "part", "track_id"]).reset_index(drop=True)


def majority(labels: pd.DataFrame, key: str, value: str) -> pd.Series:
    """The most frequent `value` per `key`; ties go to the alphabetically first value."""
    counts = labels.groupby([key, value]).size().rename("n").reset_index()
    counts = counts.sort_values([key, "n", value], ascending=[True, False, True])
    return counts.drop_duplicates(key).set_index(key)[value]


def build_catalog(tracks: pd.DataFrame, visible: pd.DataFrame, schema: DataSchema) -> pd.DataFrame:
    """One row per track. Labels and playlists come only from the visible listings.

    A track seen only in hidden memberships stays in the catalog (a real catalog holds it and
    a recommender may find it) but gets no genre label.
    """
    first = tracks.drop_duplicates("track_id").set_index("track_id").sort_index()
    catalog = pd.DataFrame(
        {
            "track_id": first.index,
            "track_name": first["track_name"].to_numpy(),
            "track_artist": first["track_artist"].to_numpy(),
            "track_album_id": first["track_album_id"].to_numpy(),
            "track_album_name": first["track_album_name"].to_numpy(),
            "release_date": first["track_album_release_date"].to_numpy(),
            "year": release_year(first["track_album_release_date"]).to_numpy(),
            "popularity": first[schema.popularity_target].to_numpy(),
        }
    )
    for feature in schema.audio_features:
        catalog[feature] = first[feature].to_numpy()
    genre = majority(visible, "track_id", "genre")
    subgenre = majority(visible, "track_id", "subgenre")
    playlists = (
        visible.drop_duplicates(["track_id", "playlist_id"])
        .sort_values("playlist_id")
        .groupby("track_id")["playlist_id"]
        .agg(list)
    )
    catalog["genre"] = catalog["track_id"].map(genre)
    catalog["subgenre"] = catalog["track_id"].map(subgenre)
    catalog["playlist_ids"] = (
        catalog["track_id"].map(playlists).apply(lambda ids: ids if isinstance(ids, list) else [])
    )
    catalog["n_playlists"] = catalog["playlist_ids"].str.len().astype("int64")
    return catalog


def split_tracks(catalog: pd.DataFrame, config: TransformConfig) -> pd.Series:
    """train/test per labelled track, stratified by genre; `unlabeled` for the rest."""
    split = pd.Series("unlabeled", index=catalog.index, dtype=object)
    labelled = catalog[catalog["genre"].notna()]
    draw = pd.Series(stable_uniform(labelled["track_id"], config.seed), index=labelled.index)
    rank = draw.groupby(labelled["genre"]).rank(method="first", pct=True)
    split[labelled.index] = np.where(rank <= config.test_share, "test", "train")
    return split


def transform_tracks(
    tracks: pd.DataFrame, config: TransformConfig, eval_ids: pd.Index | None = None
) -> TransformResult:
    """The whole transform: listings in, catalog, visible memberships and evaluation playlists out.
    `eval_ids`: other evaluation playlists than the configured share (cross-validation folds)."""
    listings = build_listings(tracks, config.schema)
    if eval_ids is None:
        eval_ids = select_eval_playlists(listings, config)
    eval_pairs = hold_out_tracks(listings, eval_ids, config)
    hidden = eval_pairs.loc[eval_pairs["part"] == "hidden", ["track_id", "playlist_id"]]
    is_hidden = _pair_keys(listings).isin(_pair_keys(hidden))
    visible = listings[~is_hidden.to_numpy()]
    catalog = build_catalog(tracks, visible, config.schema)
    catalog["split"] = split_tracks(catalog, config)
    memberships = (
        visible.sort_values(["playlist_id", "track_id", "subgenre"])
        .drop_duplicates(["track_id", "playlist_id"])
        .assign(evaluation=lambda frame: frame["playlist_id"].isin(eval_ids))
        .reset_index(drop=True)
    )
    return TransformResult(catalog=catalog, memberships=memberships, eval_playlists=eval_pairs)


def _pair_keys(frame: pd.DataFrame) -> pd.Series:
    return frame["track_id"] + "/" + frame["playlist_id"]


# --------------------------------------------------------------------------- runner


def run(manager: ConfigurationManager) -> dict[str, Any]:
    config = manager.transform()
    tracks = read_parquet(config.validated_tracks)
    result = transform_tracks(tracks, config)
    with atomic_dir(config.processed_dir) as staging:  # the three files change together or not at all
        for frame, path in (
            (result.catalog, config.catalog),
            (result.memberships, config.memberships),
            (result.eval_playlists, config.eval_playlists),
        ):
            frame.to_parquet(staging / path.name, index=False)
    summary = {
        "tracks": len(result.catalog),
        "visible_memberships": len(result.memberships),
        "eval_playlists": int(result.eval_playlists["playlist_id"].nunique()),
        "hidden_pairs": int((result.eval_playlists["part"] == "hidden").sum()),
        **result.catalog["split"].value_counts().to_dict(),
    }
    log.info("transform: %s", summary)
    return summary
