"""Playlists drawn from the synthetic track universe (contract.synthetic), as tables of rows in
the source format: one row per (track, playlist), every column of config/schema.yaml.

A playlist picks a subgenre (as the shipped playlists spread over them) and a length (a
lognormal clipped to [5, 250], mean about 66, as in the MPD), then draws its tracks: some from
a few artists of its subgenre, most from its subgenre by popularity, and a few from anywhere by
popularity (real playlists stray from their genre); a track drawn twice is listed once.
Everything is vectorised over a chunk of playlists; each chunk draws from its own seeded stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from songrec.contract.schema import DataSchema
from songrec.contract.synthetic import Catalog, feature_column, ids

MIN_LENGTH, MAX_LENGTH = 5, 250
# lognormal(3.93, 0.75): median 51, mean about 66 once clipped to [5, 250].
LENGTH_MU, LENGTH_SIGMA = 3.93, 0.75
# Where a draw comes from: the playlist's artists, its subgenre, or anywhere (the rest).
ARTIST_SHARE, SUBGENRE_SHARE = 0.35, 0.57
TRACKS_PER_ARTIST = 12  # a playlist of L tracks follows 1 + Poisson(L / 12) artists
# Draws per playlist: OVERSAMPLE * L + EXTRA_DRAWS, so that dropping repeats still leaves L.
OVERSAMPLE, EXTRA_DRAWS = 1.5, 10
MAX_ROUNDS = 30  # small catalogs need many rounds to fill their longest playlists
CHUNK_PLAYLISTS = 5000  # about 330k rows: bounded memory whatever the number of playlists
PLAYLIST_IDS = 3  # the id kind of playlists (tracks are 1, albums 2)


@dataclass(frozen=True)
class Sampler:
    """The catalog's weights as cumulative shares within groups: a draw from group g is a
    binary search for g + u, u uniform in [0, 1), in the group's keys."""

    by_subgenre: np.ndarray
    by_artist: np.ndarray
    anywhere: np.ndarray
    artists_by_subgenre: np.ndarray


def sampler_of(catalog: Catalog) -> Sampler:
    """The catalog's draws by subgenre, by artist, from anywhere, and of artists by subgenre."""
    artist_weight = np.bincount(catalog.track_artist, catalog.weight)
    anywhere = np.cumsum(catalog.weight)
    anywhere /= anywhere[-1]
    return Sampler(
        by_subgenre=grouped_keys(catalog.artist_subgenre[catalog.track_artist], catalog.weight),
        by_artist=grouped_keys(catalog.track_artist, catalog.weight),
        anywhere=anywhere,
        artists_by_subgenre=grouped_keys(catalog.artist_subgenre, artist_weight),
    )


def grouped_keys(groups: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """For items sorted by group: group + the cumulative share of its group's weight, in
    (g, g + 1], the last item of each group exactly g + 1."""
    groups = groups.astype(np.int64)
    totals = np.bincount(groups, weights)
    before = np.cumsum(totals) - totals
    keys = groups + (np.cumsum(weights) - before[groups]) / totals[groups]
    last = np.flatnonzero(np.diff(groups, append=groups[-1] + 1))
    keys[last] = groups[last] + 1.0
    return keys


def draw_in_groups(keys: np.ndarray, groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One item per entry of `groups`, by weight within that group."""
    found = np.searchsorted(keys, groups + rng.random(len(groups)), side="right")
    return np.minimum(found, len(keys) - 1)


def synthetic_tables(catalog: Catalog, n_playlists: int, schema: DataSchema) -> Iterator[pa.Table]:
    """The rows of `n_playlists` playlists, a chunk of playlists at a time."""
    sampler = sampler_of(catalog)
    for first in range(0, n_playlists, CHUNK_PLAYLISTS):
        yield playlist_table(catalog, sampler, schema, first, min(CHUNK_PLAYLISTS, n_playlists - first))


def playlist_table(
    catalog: Catalog, sampler: Sampler, schema: DataSchema, first: int, count: int
) -> pa.Table:
    """The rows of playlists first .. first + count - 1, in the schema's column order."""
    rng = np.random.default_rng([catalog.seed, 1, first])
    templates = catalog.templates
    share = np.cumsum(templates.playlist_subgenre_share)
    subgenre = np.minimum(np.searchsorted(share, rng.random(count) * share[-1], side="right"), len(share) - 1)
    lengths = np.clip(np.round(rng.lognormal(LENGTH_MU, LENGTH_SIGMA, count)), MIN_LENGTH, MAX_LENGTH)
    playlist, tracks = draw_tracks(catalog, sampler, rng, subgenre, lengths.astype(np.int64))
    track_albums = catalog.track_album[tracks]
    names = templates.playlist_names
    name_counts = np.array([len(group) for group in names])
    name_starts = np.cumsum(name_counts) - name_counts
    chosen_name = name_starts[subgenre] + (rng.random(count) * name_counts[subgenre]).astype(np.int64)
    all_names = pa.array([name for group in names for name in group], type=pa.string())
    row_subgenre = subgenre[playlist]
    columns = {
        "track_id": catalog.track_ids.take(tracks),
        "track_name": catalog.track_names.take(tracks),
        "track_artist": catalog.artist_names.take(catalog.track_artist[tracks]),
        "track_popularity": pa.array(catalog.track_popularity[tracks].astype(np.int64)),
        "track_album_id": catalog.album_ids.take(track_albums),
        "track_album_name": catalog.album_names.take(track_albums),
        "track_album_release_date": pa.array(
            templates.rows["track_album_release_date"].to_numpy()[catalog.album_template[track_albums]],
            type=pa.string(),
        ),
        "playlist_name": all_names.take(chosen_name[playlist]),
        "playlist_id": ids(catalog.seed, PLAYLIST_IDS, count, start=first).take(playlist),
        "playlist_genre": pa.array(templates.genre_of_subgenre, type=pa.string()).take(row_subgenre),
        "playlist_subgenre": pa.array(templates.subgenres, type=pa.string()).take(row_subgenre),
    }
    for name in schema.audio_features:
        columns[name] = pa.array(feature_column(catalog, name, schema, tracks))
    return pa.table({name: columns[name] for name in schema.column_names})


def draw_tracks(
    catalog: Catalog, sampler: Sampler, rng: np.random.Generator, subgenre: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(playlist, track) of every row: the first `lengths[p]` distinct tracks each playlist draws.

    Popular tracks come up again and again, so playlists still short after a round draw again,
    for what they lack, until full (or MAX_ROUNDS: a playlist may then end a little short).
    """
    # The artists a playlist follows, by artist popularity within its subgenre.
    n_artists = 1 + rng.poisson(lengths / TRACKS_PER_ARTIST)
    artists = draw_in_groups(sampler.artists_by_subgenre, np.repeat(subgenre, n_artists), rng)
    followed = Followed(artists, np.cumsum(n_artists) - n_artists, n_artists)
    owner = np.empty(0, dtype=np.int64)
    tracks = np.empty(0, dtype=np.int64)
    missing = lengths
    for _ in range(MAX_ROUNDS):
        short = missing > 0
        if not short.any():
            break
        draws = np.where(short, (OVERSAMPLE * missing).astype(np.int64) + EXTRA_DRAWS, 0)
        new_owner = np.repeat(np.arange(len(lengths)), draws)
        new_tracks = draw_candidates(catalog, sampler, rng, subgenre, followed, new_owner)
        # Only the short playlists' rows take part: the full ones stay as they are.
        redrawn = short[owner]
        kept_owner, kept_tracks = first_distinct(
            np.concatenate([owner[redrawn], new_owner]),
            np.concatenate([tracks[redrawn], new_tracks]),
            catalog.n_tracks,
        )
        owner = np.concatenate([owner[~redrawn], kept_owner])
        tracks = np.concatenate([tracks[~redrawn], kept_tracks])
        missing = lengths - np.bincount(owner, minlength=len(lengths))
    order = np.argsort(owner, kind="stable")  # grouped by playlist, each in draw order
    owner, tracks = owner[order], tracks[order]
    position = np.arange(len(owner)) - np.searchsorted(owner, owner, side="left")
    keep = position < lengths[owner]
    return owner[keep], tracks[keep]


@dataclass(frozen=True)
class Followed:
    """The artists each playlist follows: artists[starts[p]:starts[p] + counts[p]]."""

    artists: np.ndarray
    starts: np.ndarray
    counts: np.ndarray


def draw_candidates(
    catalog: Catalog,
    sampler: Sampler,
    rng: np.random.Generator,
    subgenre: np.ndarray,
    followed: Followed,
    owner: np.ndarray,
) -> np.ndarray:
    """A track for each entry of `owner` (a playlist): from its artists, subgenre, or anywhere."""
    source = rng.random(len(owner))
    tracks = np.empty(len(owner), dtype=np.int64)
    from_artist = source < ARTIST_SHARE
    owners = owner[from_artist]
    pick = followed.starts[owners] + (rng.random(len(owners)) * followed.counts[owners]).astype(np.int64)
    tracks[from_artist] = draw_in_groups(sampler.by_artist, followed.artists[pick], rng)
    from_subgenre = ~from_artist & (source < ARTIST_SHARE + SUBGENRE_SHARE)
    tracks[from_subgenre] = draw_in_groups(sampler.by_subgenre, subgenre[owner[from_subgenre]], rng)
    anywhere = source >= ARTIST_SHARE + SUBGENRE_SHARE
    found = np.searchsorted(sampler.anywhere, rng.random(int(anywhere.sum())), side="right")
    tracks[anywhere] = np.minimum(found, catalog.n_tracks - 1)
    return tracks


def first_distinct(owner: np.ndarray, tracks: np.ndarray, n_tracks: int) -> tuple[np.ndarray, np.ndarray]:
    """Each (playlist, track) once, at its first draw; rows grouped by playlist, in draw order."""
    _, first = np.unique(owner * n_tracks + tracks, return_index=True)
    first.sort()
    order = np.argsort(owner[first], kind="stable")
    return owner[first][order], tracks[first][order]
