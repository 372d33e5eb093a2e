"""The diversity setting: lists spread over artists page by page, the same in serving (CatalogView,
the pyfunc) and in the offline metrics (ArtistSpread)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from songrec.models.bundle import SongrecBundle
from songrec.models.catalog_view import CatalogView
from songrec.models.pyfunc import InvalidModelInput, SongrecPyfunc
from songrec.models.recommender.base import Playlist, top_k
from songrec.models.recommender.diversity import (
    PAGE,
    ArtistSpread,
    artist_codes,
    spread_artists,
    spread_best_tracks,
)


def test_a_cap_moves_an_artists_extra_tracks_to_the_next_page_and_loses_none() -> None:
    # Ranks 0-7 by artist 0, then 12 tracks of twelve other artists.
    codes = np.array([0] * 8 + list(range(1, 13)))
    order = spread_artists(np.arange(20), codes, 2)
    assert sorted(order.tolist()) == list(range(20))  # a reordering, nothing dropped
    assert spread_artists(np.arange(20), codes, 2, limit=12).tolist() == order[:12].tolist()
    first_page = order[:PAGE].tolist()
    assert first_page == [0, 1, 8, 9, 10, 11, 12, 13, 14, 15]  # two of artist 0, then the best others
    second_page = order[PAGE:].tolist()
    assert second_page == [2, 3, 16, 17, 18, 19, 4, 5, 6, 7]  # the passed-over first in line
    # Page 2 has too few other artists left: the best remaining tracks of artist 0 fill it.
    assert np.bincount(codes[order[PAGE:]])[0] == 6


def test_no_cap_and_unknown_artists_keep_the_order() -> None:
    codes = np.array([3, 3, 3, -1, -1, -1, -1, 3])
    assert spread_artists(np.arange(8), codes, None).tolist() == list(range(8))
    assert spread_artists(np.arange(8), codes, PAGE).tolist() == list(range(8))
    # Tracks whose artist is unknown are never held back by the cap.
    assert spread_artists(np.arange(8), codes, 1).tolist() == [0, 3, 4, 5, 6, 1, 2, 7]
    with pytest.raises(ValueError, match="max_per_artist must be 1 or more"):
        spread_artists(np.arange(8), codes, 0)


def test_every_page_of_a_served_list_respects_the_cap(bundle: SongrecBundle) -> None:
    view = CatalogView(bundle)
    codes = artist_codes(bundle.catalog["track_artist"])
    # A playlist of the catalog's most common artist: uncapped, its lists lean on that artist.
    top_artist = int(np.bincount(codes[codes >= 0]).argmax())
    seeds = np.flatnonzero(codes == top_artist)[:5]
    resolved = view.resolve([view.track_ids[p] for p in seeds])
    for cap in (1, 2, 3):
        tracks = view.recommend(resolved, [], 30, cap).tracks
        assert [t["rank"] for t in tracks] == list(range(1, 31))
        for start in range(0, 30, PAGE):
            artists = pd.Series([t["track_artist"] for t in tracks[start : start + PAGE]]).value_counts()
            assert artists.max() <= cap, (cap, start, artists.to_dict())
    free = view.recommend(resolved, [], 30, PAGE).tracks
    capped = view.recommend(resolved, [], 30, 1).tracks
    assert [t["track_id"] for t in free] != [t["track_id"] for t in capped]


def test_the_offline_metrics_rank_what_the_api_serves(bundle: SongrecBundle) -> None:
    codes = artist_codes(bundle.catalog["track_artist"])
    for offset in (0, 40, 80):
        playlist = Playlist(positions=np.arange(offset, offset + 6))
        for cap in (1, 3):
            served, _ = spread_best_tracks(bundle.recommender, playlist, 25, codes, cap)
            ranking = ArtistSpread(bundle.recommender, codes, cap, 25)
            assert top_k(ranking.score(playlist), 25, exclude=playlist.positions).tolist() == served.tolist()


def test_the_pyfunc_takes_the_setting_and_checks_it(bundle: SongrecBundle) -> None:
    model = SongrecPyfunc()
    model.view = CatalogView(bundle)
    ids = bundle.catalog["track_id"].head(5).tolist()
    frame = model.predict(None, pd.DataFrame({"track_id": ids}), {"k": 10, "max_per_artist": 1})
    assert frame["track_artist"].is_unique
    for bad in (0, 11, 2.5, True, "2"):
        with pytest.raises(InvalidModelInput, match="max_per_artist must be a whole number from 1 to 10"):
            model.predict(None, pd.DataFrame({"track_id": ids}), {"max_per_artist": bad})
