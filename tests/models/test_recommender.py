"""The model bundle, tested as behaviour (on a trained sample of the real data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from songrec.config.manager import ConfigurationManager
from songrec.core.io import load_model
from songrec.evaluation.metrics import continuation_metrics
from songrec.models.bundle import SongrecBundle
from songrec.models.catalog_view import CatalogView, RecommendAnswer, feature_rows
from songrec.models.recommender.base import Playlist, top_k
from songrec.models.recommender.baselines import MostPopularRecommender, RandomRecommender
from songrec.models.recommender.colisten import COLISTEN_FEATURES
from songrec.models.recommender.hybrid import MIN_CHANCE, HybridRecommender
from songrec.models.recommender.index import MEMBERSHIP_SIGNALS, SIGNALS
from songrec.models.recommender.reranker import RERANK_FEATURES
from songrec.models.recommender.sparse_ops import membership_matrices
from tests.models.conftest import a_playlist, reranked


@pytest.fixture(scope="module")
def bundle(trained_project: Path) -> SongrecBundle:
    return load_model(ConfigurationManager(trained_project).train().bundle)


@pytest.fixture(scope="module")
def view(bundle: SongrecBundle) -> CatalogView:
    return CatalogView(bundle)


def recommend(
    view: CatalogView, track_ids: list[str] | None = None, tracks: pd.DataFrame | None = None, k: int = 10
) -> RecommendAnswer:
    """The view's answer for catalog ids and a frame of feature rows, as the pyfunc asks."""
    rows = feature_rows(tracks, view.numeric_features)
    return view.recommend(view.resolve(track_ids or []), rows, k)


def recommended_ids(answer: RecommendAnswer) -> list[str]:
    return [str(track["track_id"]) for track in answer.tracks]


def test_a_playlist_never_gets_its_own_tracks_back(view: CatalogView, data) -> None:  # type: ignore[no-untyped-def]
    seeds = a_playlist(data, size=30)
    result = recommend(view, seeds, k=50)
    assert len(result.tracks) == 50
    assert not set(recommended_ids(result)) & set(seeds)
    scores = [track["score"] for track in result.tracks]
    assert scores == sorted(scores, reverse=True)
    assert all(track["spotify_url"].startswith("https://open.spotify.com/track/") for track in result.tracks)


def test_a_near_duplicate_of_a_seed_ranks_high(bundle: SongrecBundle, data) -> None:  # type: ignore[no-untyped-def]
    seeds = a_playlist(data, size=10)
    original = data["catalog"].set_index("track_id").loc[seeds[0]]
    twin = original.copy()
    twin["energy"] = min(1.0, twin["energy"] + 0.01)
    catalog = pd.concat(
        [data["catalog"], twin.to_frame().T.assign(track_id="TWIN00000000000000000A")], ignore_index=True
    )
    catalog = catalog.astype(data["catalog"].dtypes.to_dict())
    recommender = bundle.recommender
    assert isinstance(recommender, HybridRecommender)
    wider = SongrecBundle(
        catalog,
        recommender.with_catalog(catalog, data["memberships"]),
        "hybrid",
        bundle.genre_model,
        bundle.popularity_model,
        bundle.numeric_features,
    )
    top = recommended_ids(recommend(CatalogView(wider), seeds, k=10))
    assert "TWIN00000000000000000A" in top


def test_a_tiny_change_of_input_keeps_the_top_k_stable(  # type: ignore[no-untyped-def]
    bundle: SongrecBundle, view: CatalogView, data
) -> None:
    seeds = a_playlist(data, size=8)
    features = bundle.catalog_tracks(seeds)[list(bundle.numeric_features)].reset_index(drop=True)
    nudged = features.copy()
    nudged["tempo"] = nudged["tempo"] * 1.005
    nudged["valence"] = (nudged["valence"] + 0.002).clip(upper=1.0)
    before = set(recommended_ids(recommend(view, tracks=features, k=20)))
    after = set(recommended_ids(recommend(view, tracks=nudged, k=20)))
    assert len(before & after) >= 16


def test_unknown_ids_are_reported_and_feature_only_playlists_work(  # type: ignore[no-untyped-def]
    bundle: SongrecBundle, view: CatalogView, data
) -> None:
    seeds = a_playlist(data, size=5)
    result = recommend(view, [*seeds, "0000000000000000000000"], k=5)
    assert result.unknown_track_ids == ["0000000000000000000000"]
    features = bundle.catalog_tracks(seeds)[list(bundle.numeric_features)].reset_index(drop=True)
    only_features = recommend(view, tracks=features, k=5)
    assert len(only_features.tracks) == 5


def test_membership_signals_never_count_against_a_track(bundle: SongrecBundle) -> None:
    recommender = bundle.recommender
    assert isinstance(recommender, HybridRecommender)
    weights = recommender.signal_weights
    assert set(weights) == set(SIGNALS)
    assert all(weights[name] >= 0 for name in MEMBERSHIP_SIGNALS)
    assert weights["artist_share"] > 0


def test_the_rest_of_an_artists_playlist_is_found(view: CatalogView, data) -> None:  # type: ignore[no-untyped-def]
    # Playlists of one artist's tracks, one track held out each: it must come back near the top.
    catalog = data["catalog"]
    sizes = catalog["track_artist"].value_counts()
    found = 0
    artists = sizes[(sizes >= 4) & (sizes <= 8)].index[:20]
    for artist in artists:
        tracks = sorted(catalog.loc[catalog["track_artist"] == artist, "track_id"])
        top = recommended_ids(recommend(view, tracks[1:], k=20))
        found += tracks[0] in set(top)
    assert found >= 0.8 * len(artists)


def test_the_fused_score_is_the_weighted_sum_of_the_signals(bundle: SongrecBundle, data) -> None:  # type: ignore[no-untyped-def]
    recommender = bundle.recommender
    assert isinstance(recommender, HybridRecommender)
    index = recommender.index_
    seeds = index.track_ids.get_indexer(a_playlist(data, size=15))
    features = index.feature_mean[None, :] + np.array([[0.5], [-1.0]]) * index.feature_scale[None, :]
    playlists = {
        "catalog tracks": Playlist(positions=seeds),
        "with unknown tracks": Playlist(
            positions=seeds[:3],
            extra_features=features,
            extra_artists=(str(index.artists[0]), "someone the catalog does not know"),
            extra_years=np.array([2001.0, 2019.0]),
        ),
        "unknown tracks only": Playlist(positions=np.empty(0, np.int64), extra_features=features),
        "empty": Playlist(positions=np.empty(0, np.int64)),
    }
    # Every weight non-zero (and some negative), so that every term of the fused score counts.
    weights = np.random.default_rng(7).uniform(-2, 2, len(SIGNALS)).astype(np.float32)
    for name, playlist in playlists.items():
        fused = index.weighted_score(playlist, weights)
        reference = index.signals(playlist) @ weights
        np.testing.assert_allclose(fused, reference, rtol=1e-4, atol=1e-4, err_msg=name)


def test_hybrid_beats_the_simple_baselines_on_held_out_tracks(bundle: SongrecBundle, data) -> None:  # type: ignore[no-untyped-def]
    index = pd.Index(data["catalog"]["track_id"])
    ks = (10, 50)
    ours = continuation_metrics(bundle.recommender, index, data["eval"], ks)
    popular = continuation_metrics(
        MostPopularRecommender(data["catalog"]["popularity"].to_numpy()), index, data["eval"], ks
    )
    chance = continuation_metrics(RandomRecommender(len(index), 0), index, data["eval"], ks)
    assert ours["recall_at_50"] > 2 * max(popular["recall_at_50"], chance["recall_at_50"])


def test_genre_and_popularity_predictions(bundle: SongrecBundle, data) -> None:  # type: ignore[no-untyped-def]
    test = data["catalog"][data["catalog"]["split"] == "test"]
    genres = bundle.predict_genre(test)
    probabilities = genres[[f"p_{g}" for g in bundle.genres]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    assert (genres["genre"] == test["genre"].to_numpy()).mean() > 0.4
    popularity = bundle.predict_popularity(test)
    assert ((popularity >= 0) & (popularity <= 100)).all()


@pytest.mark.parametrize("k", [1, 10, 50, 99, 100, 400])
def test_top_k_breaks_ties_by_position(k: int) -> None:
    """Popularity-like scores tie in hundreds: the same k tracks must come back on any CPU."""
    scores = np.random.default_rng(k).integers(0, 20, 400).astype(np.float32)
    exclude = np.array([3, 17, 17, 250])
    expected = [i for i in sorted(range(400), key=lambda i: (-scores[i], i)) if i not in {3, 17, 250}][:k]
    assert top_k(scores, k, exclude).tolist() == expected


@pytest.mark.parametrize(
    ("layout", "n"),
    [("random", 30_000), ("ties", 30_000), ("best_on_the_stride", 30_000), ("random", 1_000_000)],
)
def test_top_k_of_a_catalog_sized_array_is_a_plain_sort(layout: str, n: int) -> None:
    """top_k partitions a pool below a sampled threshold: the same answer as sorting everything,
    also when the sample lies (the best scores on its stride) and when scores tie at the cut."""
    rng = np.random.default_rng(3)
    scores = rng.normal(size=n).astype(np.float32)
    if layout == "ties":
        scores = np.round(scores, 1)
    elif layout == "best_on_the_stride":
        scores[::8] += 100.0
    exclude = rng.choice(len(scores), 40, replace=False)
    excluded = set(exclude.tolist())
    order = [i for i in np.lexsort((np.arange(len(scores)), -scores)).tolist() if i not in excluded]
    for k in (1, 10, 300, 5_000):
        assert top_k(scores, k, exclude).tolist() == order[:k], k


def test_fitting_does_not_depend_on_how_a_partition_breaks_ties(
    bundle: SongrecBundle, data: dict[str, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Which of several equal scores a bare argpartition keeps depends on the CPU's sort kernel;
    if hard-negative mining picked its candidates so, the weights and the metrics would move
    from one machine to another. Every track twinned (a copy in no playlist: equal signals
    for most playlists), a partition that breaks ties the other way learns the same model."""
    catalog = data["catalog"]
    twins = catalog.assign(
        track_id=catalog["track_id"] + "-twin", playlist_ids=[[]] * len(catalog), n_playlists=0
    )
    both = pd.concat([catalog, twins], ignore_index=True)

    def fit() -> HybridRecommender:
        recommender = bundle.recommender
        assert isinstance(recommender, HybridRecommender)
        with threadpool_limits(limits=1, user_api="blas"):  # as `songrec run` fits: 10x faster here
            return HybridRecommender(recommender.feature_names, mining_rounds=2).fit(
                both, data["memberships"]
            )

    usual = fit()
    partition = np.argpartition
    monkeypatch.setattr(np, "argpartition", lambda a, kth, **_: len(a) - 1 - partition(a[::-1], kth))
    other = fit()
    np.testing.assert_array_equal(other.weights_, usual.weights_)
    assert other.intercept_ == usual.intercept_
    np.testing.assert_array_equal(other.reranker_.weights, usual.reranker_.weights)


def test_a_playlists_subgenre_tie_goes_to_the_alphabetically_first() -> None:
    """A playlist listed under two subgenres equally often: the choice must not depend on the
    order a sort leaves equal counts in (that too depends on the CPU)."""
    memberships = pd.DataFrame(
        {
            "playlist_id": ["p", "p", "p", "p", "q"],
            "track_id": ["a", "b", "c", "d", "e"],
            "subgenre": ["pop edm", "pop edm", "hip pop", "hip pop", "trap"],
        }
    )
    track_ids = pd.Index(["a", "b", "c", "d", "e"])
    matrices = membership_matrices(track_ids, np.arange(5), 5, memberships)
    # Subgenres in alphabetical order: hip pop, pop edm, trap. Every track of p has p's profile.
    np.testing.assert_array_equal(matrices["track_subgenres"][:4], [[1.0, 0.0, 0.0]] * 4)
    np.testing.assert_array_equal(matrices["track_subgenres"][4], [0.0, 0.0, 1.0])


def test_signals_at_some_tracks_are_those_tracks_signals(bundle: SongrecBundle, data) -> None:  # type: ignore[no-untyped-def]
    index = bundle.recommender.index_
    playlist = Playlist(positions=index.track_ids.get_indexer(a_playlist(data, size=15)))
    at = np.random.default_rng(5).choice(len(index), 300, replace=False)
    np.testing.assert_allclose(
        index.signals_at(playlist, at), index.signals(playlist)[at], rtol=1e-6, atol=1e-7
    )


def test_the_linear_rankers_best_are_reranked_above_the_rest(bundle: SongrecBundle, data) -> None:  # type: ignore[no-untyped-def]
    recommender, playlist, linear, candidates, features = reranked(bundle, data)
    seeds = playlist.positions
    linear_best = top_k(linear, recommender.candidates_per_playlist, exclude=seeds)
    assert set(linear_best) <= set(candidates)
    assert len(candidates) <= len(linear_best) + recommender.co_listened_candidates
    assert not set(candidates) & set(seeds)
    scores = recommender.score(playlist)
    others = np.setdiff1d(np.arange(len(scores)), candidates)
    assert scores[candidates].min() > 1.0 >= scores[others].max()
    boost = recommender.co_listening_boost * features[:, RERANK_FEATURES.index("co_count_log")]
    chance = np.maximum(recommender.reranker_.probability(features, boost), MIN_CHANCE)
    np.testing.assert_allclose(recommender.probability(scores[candidates]), chance, atol=1e-6)
    # The re-ranker changes the order the linear ranker gave (else it would be a no-op).
    assert not np.array_equal(np.argsort(-linear[candidates]), np.argsort(-chance))


def test_the_rerankers_quadratic_form_is_its_weighted_products(bundle: SongrecBundle, data) -> None:  # type: ignore[no-untyped-def]
    recommender, _, _, _, features = reranked(bundle, data)
    reranker = recommender.reranker_
    scaled = np.clip((features.astype(np.float64) - reranker.low) / reranker.span, 0.0, 1.0)
    products = scaled[:, reranker.left] * scaled[:, reranker.right]
    logit = np.hstack([scaled, products]) @ reranker.weights + reranker.intercept
    np.testing.assert_allclose(reranker.probability(features), 1.0 / (1.0 + np.exp(-logit)), rtol=1e-12)


def test_the_reranker_never_holds_the_seeds_artist_against_a_track(bundle: SongrecBundle, data) -> None:  # type: ignore[no-untyped-def]
    recommender, _, _, _, features = reranked(bundle, data)
    before = recommender.reranker_.probability(features)
    for name in ("artist_share", "album_share", "co_playlist", *COLISTEN_FEATURES):
        more = features.copy()
        more[:, RERANK_FEATURES.index(name)] += 0.25
        assert (recommender.reranker_.probability(more) >= before - 1e-9).all(), name
    more = features.copy()
    more[:, len(SIGNALS)] += 1.0  # the linear score
    assert (recommender.reranker_.probability(more) >= before - 1e-9).all()


def test_best_tracks_are_the_top_k_of_the_scores(bundle: SongrecBundle, view: CatalogView, data) -> None:  # type: ignore[no-untyped-def]
    """The serving path (best_tracks: one catalog-wide scoring) answers what evaluation ranks
    (top_k of score()), ties and shown chances included, within the candidates and beyond."""
    recommender = bundle.recommender
    assert isinstance(recommender, HybridRecommender)
    index = recommender.index_
    rng = np.random.default_rng(11)
    playlists = [
        Playlist(positions=index.track_ids.get_indexer(a_playlist(data, size=n))) for n in (1, 5, 30)
    ]
    playlists += [Playlist(positions=rng.choice(len(index), 8, replace=False)) for _ in range(5)]
    features = bundle.catalog_tracks(a_playlist(data, size=3)).reset_index(drop=True)
    rows = feature_rows(features, bundle.numeric_features)
    playlists.append(view.playlist(np.empty(0, np.int64), rows))  # tracks known by features only
    for playlist in playlists:
        scores = recommender.score(playlist)
        for k in (1, 10, recommender.candidates_per_playlist, recommender.candidates_per_playlist + 5):
            best, shown = recommender.best_tracks(playlist, k)
            expected = top_k(scores, k, exclude=playlist.positions)
            np.testing.assert_array_equal(best, expected)
            np.testing.assert_array_equal(shown, recommender.probability(scores[expected]))


def test_the_weights_are_learned_from_a_bounded_sample_of_training_playlists(
    bundle: SongrecBundle, data: dict[str, pd.DataFrame]
) -> None:
    recommender = bundle.recommender
    assert isinstance(recommender, HybridRecommender)

    def fit(bound: int | None) -> HybridRecommender:
        with threadpool_limits(limits=1, user_api="blas"):
            return HybridRecommender(
                recommender.feature_names, mining_rounds=1, max_training_playlists=bound
            ).fit(data["catalog"], data["memberships"])

    everything, sampled = fit(None), fit(20)
    assert everything.n_training_playlists_ > 20
    assert sampled.n_training_playlists_ == 20
    assert sampled.n_training_examples_ < everything.n_training_examples_
    assert np.isfinite(sampled.weights_).all()
    assert not np.array_equal(sampled.weights_, everything.weights_)
