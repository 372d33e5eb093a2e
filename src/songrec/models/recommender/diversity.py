"""Diversity you can set: at most `max_per_artist` tracks of one artist on each page of a list.

A ranked list is cut into pages of PAGE ranks (what the web page and a typical client show at
once). Each page is filled greedily from the best remaining tracks, skipping a track whose artist
already has `max_per_artist` on that page; a skipped track stays first in line for the next
page. So a list is reordered, never emptied: a track moves down a page or more, and when too few
artists remain to fill a page, the best remaining tracks fill it anyway. Recall deep in a list
is hardly touched (a moved track is still in the top 100), while the first page shows
at least PAGE / max_per_artist artists whenever the candidates allow it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from songrec.models.recommender.base import Playlist, Recommender, best_tracks, top_k

PAGE = 10
# Best-ranked candidates looked at beyond k, so that a capped page can be filled by other artists
# (at least: a recommender that re-ranks a candidate set offers all of it, which costs nothing).
EXTRA_CANDIDATES = 3 * PAGE


def effective_cap(max_per_artist: int | None) -> int | None:
    """The cap that changes anything: None for none, or for PAGE or more (a page has no more)."""
    return None if max_per_artist is None or max_per_artist >= PAGE else max_per_artist


def candidates_for(recommender: Recommender, k: int, max_per_artist: int | None) -> int:
    """How many of the best tracks to rank so that the k shown can be spread."""
    if effective_cap(max_per_artist) is None:
        return k
    return max(k + EXTRA_CANDIDATES, int(getattr(recommender, "candidates_per_playlist", 0)))


def spread_artists(
    ranked: np.ndarray, artist_codes: np.ndarray, max_per_artist: int | None, limit: int | None = None
) -> np.ndarray:
    """Indices into `ranked` (best first), reordered so that no page of PAGE ranks holds more than
    `max_per_artist` tracks of one artist, earlier ranks first within that rule (tracks that fill
    a page the cap could not fill come last on it). `artist_codes`: each ranked track's artist
    (-1: unknown, never capped). None: the order as it is. `limit`: only the first that many."""
    count = len(ranked) if limit is None else min(limit, len(ranked))
    if max_per_artist is not None and max_per_artist < 1:
        raise ValueError(f"max_per_artist must be 1 or more, not {max_per_artist}")
    max_per_artist = effective_cap(max_per_artist)
    if max_per_artist is None:
        return np.arange(count)
    waiting = list(range(len(ranked)))
    order: list[int] = []
    while waiting and len(order) < count:
        on_page: dict[int, int] = {}
        page: list[int] = []
        passed: list[int] = []
        for seen, index in enumerate(waiting):
            if len(page) == PAGE:
                passed.extend(waiting[seen:])
                break
            artist = int(artist_codes[index])
            if artist >= 0 and on_page.get(artist, 0) >= max_per_artist:
                passed.append(index)
                continue
            on_page[artist] = on_page.get(artist, 0) + 1
            page.append(index)
        # Too few artists left to fill the page within the cap: the best passed-over tracks fill
        # it, after the tracks that kept the cap.
        while len(page) < PAGE and passed:
            page.append(passed.pop(0))
        order.extend(page)
        waiting = sorted(passed)
    return np.asarray(order[:count], dtype=np.int64)


def artist_codes(artists: pd.Series) -> np.ndarray:
    """One integer per track for its artist (-1 where it is missing), for spread_artists."""
    return pd.factorize(artists)[0].astype(np.int64)


def spread_best_tracks(
    recommender: Recommender, playlist: Playlist, k: int, codes: np.ndarray, max_per_artist: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """best_tracks, k of them, spread over artists page by page (`codes`: artist_codes of the
    recommender's catalog), with their scores."""
    best, shown = best_tracks(recommender, playlist, candidates_for(recommender, k, max_per_artist))
    order = spread_artists(best, codes[best], max_per_artist, limit=k)
    return best[order], shown[order]


class ArtistSpread:
    """A recommender whose lists are spread over artists down to `depth` ranks, as the API serves
    them with that cap: a Recommender the offline metrics rank with like any other. Its spread
    tracks score above every other track, in the spread order."""

    def __init__(self, recommender: Recommender, codes: np.ndarray, max_per_artist: int | None, depth: int):
        self.recommender = recommender
        self.codes = codes
        self.max_per_artist = effective_cap(max_per_artist)
        self.depth = depth

    def score(self, playlist: Playlist) -> np.ndarray:
        scores = np.asarray(self.recommender.score(playlist), dtype=np.float64)
        if self.max_per_artist is None or len(scores) == 0:
            return scores
        best = top_k(
            scores,
            candidates_for(self.recommender, self.depth, self.max_per_artist),
            exclude=playlist.positions,
        )
        spread = best[spread_artists(best, self.codes[best], self.max_per_artist, limit=self.depth)]
        ranked = scores.copy()
        # Whole numbers above the best score: exact in the float32 that top_k compares.
        ranked[spread] = np.floor(scores.max()) + 1.0 + np.arange(len(spread), 0, -1)
        return ranked


def served_ranking(
    recommender: Recommender, artists: pd.Series, max_per_artist: int | None, depth: int
) -> Recommender:
    """The recommender as the API ranks with `max_per_artist` (itself when there is no cap)."""
    if effective_cap(max_per_artist) is None:
        return recommender
    return ArtistSpread(recommender, artist_codes(artists), max_per_artist, depth)
