"""Sparse-matrix helpers of the catalog index: the membership matrices built from visible
playlists, and the row look-ups that scoring one playlist needs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse


def row_entries(matrix: sparse.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The column indices and values of the given rows of a CSR matrix, concatenated."""
    if len(rows) <= 16:  # slices: fewer numpy calls, which is what a short playlist costs
        bounds = [(matrix.indptr[row], matrix.indptr[row + 1]) for row in rows.tolist()]
        if not bounds:
            return matrix.indices[:0], matrix.data[:0]
        return (
            np.concatenate([matrix.indices[start:end] for start, end in bounds]),
            np.concatenate([matrix.data[start:end] for start, end in bounds]),
        )
    starts = matrix.indptr[rows]
    lengths = matrix.indptr[rows + 1] - starts
    # For each entry, its offset in the matrix: its row's start plus its place in the row.
    offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
    return matrix.indices[offsets], matrix.data[offsets]


def spread(
    matrix: sparse.csr_matrix, rows: np.ndarray, row_values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """`row_entries`, each entry's value multiplied by its row's value."""
    columns, values = row_entries(matrix, rows)
    return columns, values * np.repeat(row_values, np.diff(matrix.indptr)[rows])


def code_counts(codes: np.ndarray, n_codes: int) -> np.ndarray:
    """How often each code occurs, with one last slot that stays 0 for code -1 (unknown)."""
    return np.bincount(codes, minlength=n_codes + 1).astype(np.float32)


def membership_matrices(
    track_ids: pd.Index, artist_codes: np.ndarray, n_artists: int, memberships: pd.DataFrame
) -> dict[str, Any]:
    """The CatalogIndex fields that come from visible memberships."""
    rows = track_ids.get_indexer(memberships["track_id"])
    keep = rows >= 0
    kept = memberships[keep]
    playlist_codes, playlist_ids = pd.factorize(kept["playlist_id"])
    n_playlists = len(playlist_ids)
    ones = np.ones(len(kept), dtype=np.float32)
    tracks = sparse.csr_matrix((ones, (rows[keep], playlist_codes)), shape=(len(track_ids), n_playlists))
    artists = artist_codes[rows[keep]]
    known = artists >= 0
    by_artist = sparse.csr_matrix(
        (ones[known], (artists[known], playlist_codes[known])), shape=(n_artists, n_playlists)
    )
    # Each playlist's subgenre (its most common listing; ties go to the alphabetically first, as
    # in transform's majority: value_counts' order among equal counts depends on the CPU's
    # sort kernel), one-hot: playlists x subgenres.
    subgenre_codes, _ = pd.factorize(kept["subgenre"].to_numpy(), sort=True)
    counts = (
        pd.DataFrame({"playlist": playlist_codes, "subgenre": subgenre_codes})
        .groupby(["playlist", "subgenre"])
        .size()
        .rename("n")
        .reset_index()
        .sort_values(["playlist", "n", "subgenre"], ascending=[True, False, True])
    )
    playlist_subgenre = counts.drop_duplicates("playlist").set_index("playlist")["subgenre"]
    n_subgenres = int(subgenre_codes.max(initial=-1)) + 1
    one_hot = sparse.csr_matrix(
        (np.ones(n_playlists, dtype=np.float32), (playlist_subgenre.index, playlist_subgenre.to_numpy())),
        shape=(n_playlists, max(n_subgenres, 1)),
    )
    # Column-major, like unit_features: a product with one playlist's profile per request.
    artist_profiles = np.asfortranarray(
        np.vstack(
            [
                normalized_rows(np.asarray((by_artist @ one_hot).todense())),
                np.zeros((1, max(n_subgenres, 1)), dtype=np.float32),
            ]
        )
    )
    return {
        "playlists": tracks,
        "track_subgenres": normalized_rows(np.asarray((tracks @ one_hot).todense())),
        "artist_subgenres": artist_profiles,
    }


def normalized_rows(values: np.ndarray) -> np.ndarray:
    totals = values.sum(axis=1, keepdims=True)
    totals[totals == 0] = 1.0
    return (values / totals).astype(np.float32)


def unit_rows(values: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(values, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return values / norms
