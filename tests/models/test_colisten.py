"""Co-listening in songrec's recommender: plain co-occurrence's best tracks are re-ranked, with
features that are co-occurrence's own counts, and a boost that lifts only co-listened tracks."""

from __future__ import annotations

import numpy as np
import pandas as pd

from songrec.models.bundle import SongrecBundle
from songrec.models.recommender.base import Playlist, top_k
from songrec.models.recommender.baselines import CooccurrenceRecommender
from songrec.models.recommender.colisten import COLISTEN_FEATURES, co_listening, colisten_features, track_sums
from songrec.models.recommender.hybrid import HybridRecommender
from songrec.models.recommender.reranker import RERANK_FEATURES, candidate_features
from tests.models.conftest import a_playlist, reranked


def seed_positions(bundle: SongrecBundle, data: dict[str, pd.DataFrame], size: int) -> np.ndarray:
    """The largest visible playlist's first tracks, as catalog positions."""
    return bundle.recommender.index_.track_ids.get_indexer(a_playlist(data, size))


def test_the_tracks_plain_cooccurrence_ranks_first_are_reranked_too(
    bundle: SongrecBundle, data: dict[str, pd.DataFrame]
) -> None:
    """Co-listening used fully: the re-ranker sees plain co-occurrence's best tracks even where
    the linear ranker puts them low, and its co-listening features are co-occurrence's counts."""
    recommender, playlist, _, candidates, features = reranked(bundle, data)
    cooccurrence = CooccurrenceRecommender(
        recommender.index_.track_ids, data["memberships"], data["catalog"]["popularity"].to_numpy()
    )
    counts = cooccurrence.counts(playlist)
    best = top_k(cooccurrence.score(playlist), recommender.co_listened_candidates, exclude=playlist.positions)
    best = best[counts[best] > 0]
    assert len(best) and set(best) <= set(candidates)
    co_count = np.expm1(features[:, RERANK_FEATURES.index("co_count_log")])
    np.testing.assert_allclose(co_count, counts[candidates], rtol=1e-5)


def test_co_listening_features_are_the_membership_matrix_counts(
    bundle: SongrecBundle, data: dict[str, pd.DataFrame]
) -> None:
    """Each feature against the seeds x tracks product of the membership matrix."""
    recommender = bundle.recommender
    assert isinstance(recommender, HybridRecommender)
    index = recommender.index_
    seeds = seed_positions(bundle, data, 20)
    co = co_listening(index, Playlist(positions=seeds))
    positions = np.union1d(co.tracks[::3], np.arange(0, len(index), 97))
    positions = positions[~np.isin(positions, seeds)]
    shared = np.asarray((index.playlists[positions] @ index.playlists[seeds].T).sum(axis=1)).ravel()
    own = np.asarray(index.playlists[positions].sum(axis=1)).ravel()
    seed_memberships = float(index.playlists[seeds].sum())
    assert (shared > 0).any() and (shared == 0).any()
    features = colisten_features(co, index, positions)
    column = {name: features[:, i] for i, name in enumerate(COLISTEN_FEATURES)}
    np.testing.assert_allclose(np.expm1(column["co_count_log"]), shared, rtol=1e-6)
    cosine = np.where(shared > 0, shared / np.sqrt(np.maximum(own * seed_memberships, 1.0)), 0.0)
    np.testing.assert_allclose(column["co_cosine"], cosine, rtol=1e-6)  # the matrix is float32
    np.testing.assert_allclose(
        column["co_per_playlist"], np.where(shared > 0, shared / np.maximum(own, 1.0), 0.0)
    )


def test_summing_by_sorting_or_by_a_catalog_count_gives_the_same_bits() -> None:
    """A small request sorts its entries, a large one counts over the catalog: the same tracks,
    and the same float sums, either way."""
    rng = np.random.default_rng(0)
    tracks = rng.integers(0, 5_000, 2_000)
    weights = rng.random(2_000) * rng.integers(1, 4, 2_000)
    by_sorting = track_sums(tracks, weights, 1_000_000)  # few entries per catalog track: sorted
    by_counting = track_sums(tracks, weights, 5_000)  # many: counted over the catalog
    np.testing.assert_array_equal(by_sorting[0], np.unique(tracks))
    np.testing.assert_array_equal(by_sorting[0], by_counting[0])
    np.testing.assert_array_equal(by_sorting[1], by_counting[1])  # exactly, not approximately
    assert by_sorting[1][0] == weights[tracks == by_sorting[0][0]].sum()


def test_a_co_listening_boost_lifts_only_the_tracks_the_seeds_are_heard_with(
    bundle: SongrecBundle, data: dict[str, pd.DataFrame]
) -> None:
    """The boost (0 by default, a setting `songrec tune` searches) is a prior on co-listening and
    nothing else: a candidate no seed co-occurs with keeps its chance, the others rise with
    their count."""
    import copy

    recommender = bundle.recommender
    assert isinstance(recommender, HybridRecommender)
    playlist = Playlist(positions=seed_positions(bundle, data, 5))
    seen = recommender.index_.seeds(playlist)
    linear = recommender.index_.weighted_score(playlist, recommender.weights_, seen)
    boosted = copy.copy(recommender)
    boosted.co_listening_boost = 0.6
    top, plain = recommender._reranked(playlist, linear, seen)
    same_top, lifted = boosted._reranked(playlist, linear, seen)
    np.testing.assert_array_equal(top, same_top)
    co = co_listening(recommender.index_, playlist)
    where = co.at(top)
    counts = np.where(where >= 0, co.counts[where], 0)
    assert (counts > 0).any() and (counts == 0).any()
    np.testing.assert_allclose(lifted[counts == 0], plain[counts == 0])
    assert (lifted[counts > 0] > plain[counts > 0]).all()


def test_a_recommender_pickled_before_co_listening_ranks_as_it_did(
    bundle: SongrecBundle, data: dict[str, pd.DataFrame]
) -> None:
    """An older champion in the registry keeps serving after an upgrade: no co-listened
    candidates, no boost, and its re-ranker reads the features it was fitted on."""
    import copy

    from songrec.models.recommender.reranker import PairwiseReranker

    current: HybridRecommender = bundle.recommender
    old = copy.copy(current)
    del old.__dict__["co_listened_candidates"], old.__dict__["co_listening_boost"]  # as unpickled
    legacy_width = len(RERANK_FEATURES) - len(COLISTEN_FEATURES)
    playlist = Playlist(positions=seed_positions(bundle, data, 5))
    linear = current.index_.weighted_score(playlist, current.weights_)
    top, features = candidate_features(current.index_, playlist, linear, current.candidates_per_playlist)
    rng = np.random.default_rng(0)
    old.reranker_ = PairwiseReranker.fit(features[:, :legacy_width], rng.random(len(top)) < 0.2, 1.0)
    scores = old.score(playlist)
    reranked = np.flatnonzero(scores >= 1.0)
    # Exactly the linear ranker's best are re-ranked, as before co-listening existed.
    np.testing.assert_array_equal(
        reranked, np.sort(top_k(linear, current.candidates_per_playlist, playlist.positions))
    )
    best, _ = old.best_tracks(playlist, 10)
    np.testing.assert_array_equal(best, top_k(scores, 10, exclude=playlist.positions))
