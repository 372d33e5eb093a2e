"""Synthetic playlist data with the shape of real playlist data (the Million Playlist Dataset),
made from the shipped data set: the track universe (this module) and the playlists drawn from
it (contract.synthetic_playlists).

Every synthetic track copies a "template" track of the shipped data, so the joint distribution
of audio features, release date and subgenre stays that of real tracks (genre stays learnable);
only small multiplicative noise is added, and ids and names are new. Tracks belong to artists
(each of one subgenre) and albums with heavy-tailed sizes, and carry Zipf-like popularity
weights, so that a few tracks are in very many playlists and most in one or two.

Pure: the shipped rows and the schema in, numpy and pyarrow arrays out; it opens no file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from songrec.contract.schema import DataSchema
from songrec.contract.validation import validate_tracks

# The track universe grows sublinearly with the playlists: 60 * N**0.8 is 3.8M tracks at 1M
# playlists, of which about 2.7M get drawn at all (the MPD lists 2.26M tracks).
TRACKS_SCALE, TRACKS_GROWTH = 60.0, 0.8
MIN_TRACKS_PER_SUBGENRE = 400  # small N still fills a 250-track playlist from one subgenre
# Popularity weight of the track of rank r: (r + q)**-ZIPF_EXPONENT with q = ZIPF_OFFSET * tracks.
# The offset flattens the head (the top track is in tens of thousands of 1M playlists, not in
# all of its subgenre's); the exponent above 1 keeps most drawn tracks in one or two playlists.
ZIPF_EXPONENT, ZIPF_OFFSET = 1.35, 3e-4
# Tracks per artist: ceil(lognormal), mean about 7 (MPD: 2.26M tracks by 296k artists).
ARTIST_SIZE_MU, ARTIST_SIZE_SIGMA = 1.1, 1.2
# An artist's releases: singles, or albums of 1 + Poisson(ALBUM_EXTRA_TRACKS) tracks.
SINGLE_SHARE, ALBUM_EXTRA_TRACKS = 0.5, 5.0
# Multiplicative noise on the numeric features of a template (exp of a normal with this sd).
FEATURE_NOISE = 0.05
# Popularity 0-100 follows the weight's rank through the shipped popularity's quantiles, with
# this much jitter on the quantile, so it correlates with how often a track is drawn.
POPULARITY_JITTER = 0.05
CATEGORICAL_FEATURES = ("key", "mode")  # copied from the template: noise would change the category
DECIMALS = 5  # float features are written with at most this many decimals
ID_ALPHABET = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", np.uint8)


@dataclass(frozen=True)
class Templates:
    """What synthesis samples from the shipped data: its valid tracks and playlist mix."""

    rows: pd.DataFrame  # one row per valid shipped track, sorted by subgenre
    subgenres: tuple[str, ...]
    genre_of_subgenre: tuple[str, ...]
    subgenre_starts: np.ndarray  # rows of subgenre s: subgenre_starts[s]:subgenre_starts[s + 1]
    playlist_subgenre_share: np.ndarray  # share of playlists per subgenre
    playlist_names: tuple[tuple[str, ...], ...]  # per subgenre, the shipped playlists' names
    popularity_quantiles: np.ndarray  # sorted shipped track popularity
    words: np.ndarray  # title words, for names


@dataclass(frozen=True)
class Catalog:
    """The synthetic track universe: tracks ordered by subgenre, then artist, then album."""

    templates: Templates
    seed: int
    track_artist: np.ndarray  # artist of each track
    track_album: np.ndarray
    track_template: np.ndarray  # the template row each track copies
    track_popularity: np.ndarray
    features: dict[str, np.ndarray]  # numeric columns; floats as integers in 10**-DECIMALS
    artist_subgenre: np.ndarray  # artists are ordered by subgenre
    album_template: np.ndarray  # the template whose release date the album carries
    weight: np.ndarray  # how often a track is drawn, relative to the others
    track_ids: pa.Array
    track_names: pa.Array
    artist_names: pa.Array
    album_ids: pa.Array
    album_names: pa.Array

    @property
    def n_tracks(self) -> int:
        return len(self.track_artist)


def catalog_size(n_playlists: int, n_subgenres: int) -> int:
    """Tracks in the universe for `n_playlists` playlists."""
    return max(round(TRACKS_SCALE * n_playlists**TRACKS_GROWTH), MIN_TRACKS_PER_SUBGENRE * n_subgenres)


def templates_from(shipped: pd.DataFrame, schema: DataSchema) -> Templates:
    """The shipped rows that meet the contract, one per track, and the shipped playlist mix."""
    valid = validate_tracks(shipped, schema, max_quarantined_share=1.0).valid_rows
    subgenres = tuple(sorted(valid["playlist_subgenre"].unique()))
    code = {name: i for i, name in enumerate(subgenres)}
    rows = valid.drop_duplicates("track_id").copy()
    rows["subgenre_code"] = rows["playlist_subgenre"].map(code)
    rows = rows.sort_values(["subgenre_code", "track_id"], kind="stable").reset_index(drop=True)
    counts = np.bincount(rows["subgenre_code"], minlength=len(subgenres))
    playlists = valid.drop_duplicates(["playlist_id", "playlist_subgenre"])
    share = np.bincount(playlists["playlist_subgenre"].map(code), minlength=len(subgenres))
    genre_of = dict(zip(playlists["playlist_subgenre"], playlists[schema.genre_target], strict=True))
    names = tuple(
        tuple(sorted(playlists.loc[playlists["playlist_subgenre"] == name, "playlist_name"].unique()))
        for name in subgenres
    )
    return Templates(
        rows=rows,
        subgenres=subgenres,
        genre_of_subgenre=tuple(str(genre_of[name]) for name in subgenres),
        subgenre_starts=np.concatenate([[0], np.cumsum(counts)]),
        playlist_subgenre_share=share / share.sum(),
        playlist_names=names,
        popularity_quantiles=np.sort(rows[schema.popularity_target].to_numpy()),
        words=title_words(valid["track_name"]),
    )


def title_words(titles: pd.Series) -> np.ndarray:
    """Distinct capitalised words of the shipped titles, in a fixed order."""
    found = {word.capitalize() for title in titles.dropna() for word in re.findall(r"[A-Za-z]{3,}", title)}
    return np.array(sorted(found), dtype=object)


def build_catalog(templates: Templates, n_playlists: int, schema: DataSchema, seed: int) -> Catalog:
    """The track universe for `n_playlists` playlists, all of it drawn from `seed`."""
    rng = np.random.default_rng([seed, 0])
    n_tracks = catalog_size(n_playlists, len(templates.subgenres))
    sizes = artist_sizes(rng, n_tracks)
    # Artists inherit a subgenre drawn as the shipped tracks spread over subgenres (one of each
    # first, so no subgenre is left without artists); their order groups them by subgenre.
    track_share = np.diff(templates.subgenre_starts) / templates.subgenre_starts[-1]
    drawn = rng.choice(len(track_share), size=len(sizes) - len(track_share), p=track_share)
    artist_subgenre = np.sort(np.concatenate([np.arange(len(track_share)), drawn])).astype(np.int16)
    track_artist = np.repeat(np.arange(len(sizes), dtype=np.int32), sizes)
    track_album = albums_of(rng, track_artist)
    # Each track copies a template of its artist's subgenre, uniformly.
    subgenre = artist_subgenre[track_artist]
    starts, stops = templates.subgenre_starts[subgenre], templates.subgenre_starts[subgenre + 1]
    track_template = (starts + (rng.random(n_tracks) * (stops - starts)).astype(np.int64)).astype(np.int32)
    album_first = np.flatnonzero(np.diff(track_album, prepend=-1))
    weight, rank = popularity_weights(rng, track_artist)
    popularity_share = np.clip(1 - rank / n_tracks + rng.normal(0, POPULARITY_JITTER, n_tracks), 0, 1)
    popularity = np.quantile(templates.popularity_quantiles, popularity_share, method="nearest")
    return Catalog(
        templates=templates,
        seed=seed,
        track_artist=track_artist,
        track_album=track_album,
        track_template=track_template,
        track_popularity=popularity.astype(np.int16),
        features=noisy_features(rng, templates.rows, track_template, schema),
        artist_subgenre=artist_subgenre,
        album_template=track_template[album_first],
        weight=weight,
        track_ids=ids(seed, 1, n_tracks),
        track_names=names(templates.words, n_tracks, seed, 1),
        artist_names=names(templates.words, len(sizes), seed, 2),
        album_ids=ids(seed, 2, len(album_first)),
        album_names=names(templates.words, len(album_first), seed, 3),
    )


def artist_sizes(rng: np.random.Generator, n_tracks: int) -> np.ndarray:
    """Heavy-tailed tracks per artist, summing to `n_tracks`."""
    sizes = np.ceil(rng.lognormal(ARTIST_SIZE_MU, ARTIST_SIZE_SIGMA, n_tracks // 4 + 64)).astype(np.int64)
    while sizes.sum() < n_tracks:  # rare: the first draw fell short
        more = rng.lognormal(ARTIST_SIZE_MU, ARTIST_SIZE_SIGMA, n_tracks // 4 + 64)
        sizes = np.concatenate([sizes, np.ceil(more).astype(np.int64)])
    count = int(np.searchsorted(np.cumsum(sizes), n_tracks)) + 1
    sizes = sizes[:count]
    sizes[-1] -= sizes.sum() - n_tracks
    return sizes


def albums_of(rng: np.random.Generator, track_artist: np.ndarray) -> np.ndarray:
    """Album of each track: runs of singles and albums, never spanning two artists."""
    n = len(track_artist)
    album_sizes = np.where(rng.random(n) < SINGLE_SHARE, 1, 1 + rng.poisson(ALBUM_EXTRA_TRACKS, n))
    starts = np.zeros(n, dtype=bool)
    ends = np.cumsum(album_sizes)
    starts[ends[ends < n]] = True
    starts[np.flatnonzero(np.diff(track_artist, prepend=-1))] = True
    return (np.cumsum(starts) - 1).astype(np.int32)


def popularity_weights(rng: np.random.Generator, track_artist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Zipf-Mandelbrot weights over a random rank of the tracks, and that rank (0 = top).

    An artist's tracks share half of their rank score, so popular artists have several
    popular tracks, as real ones do.
    """
    n = len(track_artist)
    artist_score = rng.normal(size=int(track_artist[-1]) + 1)
    score = artist_score[track_artist] + rng.normal(size=n)
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(-score, kind="stable")] = np.arange(n)
    weight = (rank + 1 + ZIPF_OFFSET * n) ** -ZIPF_EXPONENT
    return weight / weight.sum(), rank


def noisy_features(
    rng: np.random.Generator, rows: pd.DataFrame, template: np.ndarray, schema: DataSchema
) -> dict[str, np.ndarray]:
    """The templates' audio features with multiplicative noise, held to the schema's ranges.

    Features that name a category (key, mode) are copied as they are; floats are
    kept as integers in units of 10**-DECIMALS (4 bytes a value, and written without the
    binary noise of a float32).
    """
    features = {}
    for name in schema.audio_features:
        rule = schema.column(name)
        values = rows[name].to_numpy()[template]
        if name in CATEGORICAL_FEATURES:
            features[name] = values.astype(np.int16)
            continue
        noisy = values * np.exp(rng.normal(0, FEATURE_NOISE, len(values)))
        scale = 1 if rule.dtype == "int" else 10**DECIMALS
        low = -np.inf if rule.min is None else rule.min * scale + (1 if rule.min_exclusive else 0)
        high = np.inf if rule.max is None else rule.max * scale - (1 if rule.max_exclusive else 0)
        features[name] = np.clip(np.round(noisy * scale), low, high).astype(np.int32)
    return features


def feature_column(catalog: Catalog, name: str, schema: DataSchema, tracks: np.ndarray) -> np.ndarray:
    """A numeric column for `tracks`, in the schema's units."""
    values = catalog.features[name][tracks]
    if schema.column(name).dtype == "float":
        return values / 10**DECIMALS  # correctly rounded: written as the short decimal
    return values


def ids(seed: int, kind: int, n: int, start: int = 0) -> pa.Array:
    """`n` Spotify-style ids (22 characters of [0-9A-Za-z]), a hash of (seed, kind, index)."""
    index = np.arange(start, start + n, dtype=np.uint64)
    first = _mix(index ^ _mix(np.uint64(seed) * np.uint64(1_000_003) + np.uint64(kind)))
    second = _mix(first ^ np.uint64(0x9E3779B97F4A7C15))
    digits = np.empty((n, 22), dtype=np.uint8)
    for half, value in enumerate((first, second)):
        for position in range(11):
            value, digit = np.divmod(value, np.uint64(62))
            digits[:, half * 11 + position] = ID_ALPHABET[digit.astype(np.int64)]
    return pa.array(digits.view("S22").ravel(), type=pa.binary(22)).cast(pa.string())


def names(words: np.ndarray, n: int, seed: int, kind: int) -> pa.Array:
    """`n` two-word names, distinct while n < len(words)**2 (artist names are model inputs)."""
    size = len(words)
    order = np.random.default_rng([seed, 100 + kind])
    first, second = order.permutation(size), order.permutation(size)
    index = np.arange(n, dtype=np.int64)
    a, b = index % size, (index // size + index) % size  # (a, b) is one-to-one on n < size**2
    vocabulary = pa.array(words, type=pa.string())
    return pc.binary_join_element_wise(vocabulary.take(first[a]), vocabulary.take(second[b]), " ")


def _mix(value: np.ndarray | np.uint64) -> np.ndarray:
    """splitmix64's finaliser: a bijection of 64-bit integers that scatters nearby inputs."""
    mixed = np.asarray(value, dtype=np.uint64)
    with np.errstate(over="ignore"):  # the multiplications wrap around by design
        mixed = (mixed ^ (mixed >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        mixed = (mixed ^ (mixed >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return np.asarray(mixed ^ (mixed >> np.uint64(31)))
