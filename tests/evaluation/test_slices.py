"""The evaluation's slices: cold-start artists, co-occurrence reach, how varied lists are."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from songrec.evaluation.metrics import continuation_of, continuation_per_playlist, rank_playlists
from songrec.evaluation.slices import RankedPlaylist, artist_slices, diversity, recall_by_reach, with_reach
from songrec.models.recommender.base import Playlist
from songrec.models.recommender.baselines import CooccurrenceRecommender

TRACKS = pd.Index(["a", "b", "c", "d", "e"])
MEMBERSHIPS = pd.DataFrame(
    {"playlist_id": ["p1", "p1", "p1", "p2", "p2", "p3"], "track_id": ["a", "b", "c", "a", "b", "d"]}
)


def test_cooccurrence_counts_the_visible_playlists_a_track_shares_with_the_seeds() -> None:
    model = CooccurrenceRecommender(TRACKS, MEMBERSHIPS, np.array([1.0, 5.0, 3.0, 9.0, 0.0]))
    counts = model.counts(Playlist(positions=np.array([0])))  # seed a: in p1 and p2
    assert counts.tolist() == [2.0, 2.0, 1.0, 0.0, 0.0]  # b shares both, c one, d and e none
    scores = model.score(Playlist(positions=np.array([0])))
    assert scores[1] > scores[2] > scores[3] and scores[3] > scores[4]  # ties: the more popular first
    assert model.counts(Playlist(positions=np.array([], dtype=np.int64))).sum() == 0


def test_recall_by_reach_splits_the_hidden_tracks() -> None:
    lists = [
        RankedPlaylist(np.array([0]), np.array([1, 4]), np.array([True, False]), np.array([1, 2, 3])),
        RankedPlaylist(np.array([3]), np.array([2]), np.array([False]), np.array([2, 0])),
    ]
    got = recall_by_reach(lists, k=2)
    assert got["reachable"] == {"playlists": 1, "hidden_tracks": 1, "recall_at_2": 1.0}
    assert got["unreachable"] == {"playlists": 2, "hidden_tracks": 2, "recall_at_2": 0.5}


def test_one_ranking_per_playlist_gives_the_metrics_and_the_reach() -> None:
    model = CooccurrenceRecommender(TRACKS, MEMBERSHIPS, np.array([1.0, 5.0, 3.0, 9.0, 0.0]))
    eval_playlists = pd.DataFrame(
        {
            "playlist_id": ["q1", "q1", "q1", "q2", "q2", "q3"],
            "track_id": ["a", "c", "d", "b", "zz", "e"],  # zz: not in the catalog
            "part": ["visible", "hidden", "hidden", "visible", "hidden", "visible"],
        }
    )
    rankings = rank_playlists(model, TRACKS, eval_playlists, 2)
    assert [r.n_hidden for r in rankings] == [2, 1]  # q3 hides nothing: not ranked
    per_playlist = continuation_of(rankings, [1, 2])
    for name, values in continuation_per_playlist(model, TRACKS, eval_playlists, [1, 2]).items():
        np.testing.assert_array_equal(values, per_playlist[name])
    assert per_playlist["recall_at_2"].tolist() == [0.5, 0.0]  # b, c ranked: c found; zz missed
    reached = with_reach(rankings, model)
    assert len(reached) == 1  # q2's hidden track is unknown to the catalog: no slice to count it in
    assert reached[0].reachable.tolist() == [True, False]  # c shares p1 with a; d shares nothing


def test_diversity_counts_distinct_artists_coverage_and_novelty() -> None:
    catalog = pd.DataFrame({"track_artist": ["x", "x", "y", "z", None], "n_playlists": [3, 1, 1, 0, 0]})
    lists = [RankedPlaylist(np.array([4]), np.array([3]), np.array([False]), np.array([0, 1, 2]))]
    got = diversity(lists, catalog, top=3)
    assert got["distinct_artists_at_3"] == 2.0 and got["coverage_at_100"] == pytest.approx(3 / 5)
    rare = diversity(
        [RankedPlaylist(np.array([0]), np.array([3]), np.array([False]), np.array([3, 4]))], catalog, 2
    )
    assert rare["novelty_at_2"] > got["novelty_at_3"]  # tracks in fewer playlists are more novel


def test_artist_slices_split_the_test_tracks(trained_project) -> None:  # type: ignore[no-untyped-def]
    from songrec.config.manager import ConfigurationManager
    from songrec.core.io import load_model
    from songrec.evaluation.metrics import genre_metrics, measure_bundle, popularity_metrics

    manager = ConfigurationManager(trained_project)
    catalog = pd.read_parquet(manager.train().catalog)
    bundle = load_model(manager.train().bundle)
    eval_playlists = pd.read_parquet(manager.transform().eval_playlists)
    evidence = measure_bundle(bundle, catalog, eval_playlists, [10]).evidence
    slices = artist_slices(evidence, catalog, seed=0)
    test = catalog[catalog["split"] == "test"]
    assert slices["seen_artist"]["test_tracks"] + slices["unseen_artist"]["test_tracks"] == len(test)
    seen = test["track_artist"].isin(set(catalog.loc[catalog["split"] == "train", "track_artist"]))
    for name, part in (("seen_artist", test[seen]), ("unseen_artist", test[~seen])):
        found = slices[name]
        # The slice's figures are the bundle's own on those tracks, inside their intervals.
        assert found["genre_macro_f1"] == pytest.approx(genre_metrics(bundle, part)["macro_f1"])
        assert found["popularity_r2"] == pytest.approx(popularity_metrics(bundle, part)["r2"])
        for metric in ("genre_macro_f1", "popularity_r2"):
            span = found[f"{metric}_ci95"]
            assert span["low"] <= found[metric] <= span["high"] and span["low"] < span["high"]
