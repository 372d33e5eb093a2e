"""HybridRecommender, songrec's own recommender.

A linear ranker over signals a real catalog holds (shared artist, shared album, co-membership
in visible playlists, audio similarity, release year and popularity: index.SIGNALS), whose
best candidates, with the tracks plain co-occurrence ranks first, a PairwiseReranker orders
again with their co-listening and the features' pairwise products. Both are
fitted by logistic regression on simulated continuations of the training playlists (hide part
of each, learn to find it again). The baselines are in baselines.py, the reference system's
recommender in models/reference.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from songrec.config.params import RecommenderParams
from songrec.core.hashing import at_most, hidden_pairs
from songrec.models.recommender.base import Playlist, top_k
from songrec.models.recommender.index import MEMBERSHIP_SIGNALS, SIGNALS, CatalogIndex, Seeds
from songrec.models.recommender.reranker import RERANK_FEATURES, PairwiseReranker, candidate_features
from songrec.models.recommender.solver import fit_bounded_logistic


def fit_ranking_weights(examples: np.ndarray, labels: np.ndarray, c: float) -> tuple[np.ndarray, float]:
    """L2-regularized logistic regression, with MEMBERSHIP_SIGNALS' weights bounded at zero."""
    weights, intercept = fit_bounded_logistic(
        examples, labels, c, np.array([name in MEMBERSHIP_SIGNALS for name in SIGNALS])
    )
    return weights.astype(np.float32), intercept


# The co-listening feature the boost multiplies: log1p of the co-occurrence count with the seeds.
BOOSTED_FEATURE = RERANK_FEATURES.index("co_count_log")

# The least chance a re-ranked candidate is given: 1 + it is still above 1 in float32, so every
# candidate stays above the tracks not re-ranked (co-listened tracks the linear ranker scores
# very low can get chances that 1 + would round away).
MIN_CHANCE = float(np.finfo(np.float32).eps)


class HybridRecommender:
    """A linear ranker over catalog signals, its weights learned from playlist continuations.

    fit() simulates the evaluation protocol on the training playlists only (playlists marked
    `evaluation` in the memberships are never used to learn the weights; on a large catalog, a
    seeded sample of `max_training_playlists` of them): it hides a seeded share of each
    playlist, computes the signals of every catalog track from the rest, keeps the strongest
    candidates plus random ones, and fits a logistic regression that tells the hidden tracks
    from the others. Then, on the `candidates_per_playlist` tracks those weights
    rank first and the `co_listened_candidates` that plain co-occurrence ranks first, it fits the
    re-ranker (PairwiseReranker), which orders them again with their co-listening features and
    the features' pairwise products (metrics/recommender.json shows what it gives). In use,
    `co_listening_boost` x log1p(co-occurrence count) can be added to the re-ranker's log-odds
    (0 by default): a prior for co-listening, which a re-ranker fitted mostly on tracks no seed
    co-occurs with learns weakly.
    """

    # A recommender pickled before co-listening has neither setting, and a re-ranker fitted on
    # the first features only: it ranks as it always did (_reranked gives it those features).
    co_listened_candidates: int = 0
    co_listening_boost: float = 0.0
    max_training_playlists: int | None = None  # only fit() reads it

    def __init__(
        self,
        feature_names: Sequence[str],
        holdout_share: float = 0.2,
        candidates_per_playlist: int = 300,
        random_negatives_per_playlist: int = 300,
        regularization_c: float = 1.0,
        mining_rounds: int = 3,
        min_playlist_tracks: int = 5,
        seed: int = 42,
        co_listened_candidates: int = 50,
        co_listening_boost: float = 0.0,
        max_training_playlists: int | None = None,
    ) -> None:
        self.feature_names = tuple(feature_names)
        self.holdout_share = holdout_share
        self.candidates_per_playlist = candidates_per_playlist
        self.random_negatives_per_playlist = random_negatives_per_playlist
        self.regularization_c = regularization_c
        self.mining_rounds = mining_rounds
        self.min_playlist_tracks = min_playlist_tracks
        self.seed = seed
        self.co_listened_candidates = co_listened_candidates
        self.co_listening_boost = co_listening_boost
        self.max_training_playlists = max_training_playlists

    @classmethod
    def from_params(
        cls, params: RecommenderParams, feature_names: Sequence[str], seed: int
    ) -> HybridRecommender:
        """The recommender params.yaml's `train.recommender` describes (not fitted)."""
        return cls(
            feature_names=feature_names,
            holdout_share=params.training_holdout_share,
            candidates_per_playlist=params.candidates_per_playlist,
            random_negatives_per_playlist=params.random_negatives_per_playlist,
            regularization_c=params.regularization_c,
            seed=seed,
            co_listened_candidates=params.co_listened_candidates,
            co_listening_boost=params.co_listening_boost,
            max_training_playlists=params.max_training_playlists,
        )

    def fit(self, catalog: pd.DataFrame, memberships: pd.DataFrame) -> HybridRecommender:
        self.index_ = CatalogIndex.build(catalog, memberships, self.feature_names)
        training = memberships[~memberships["evaluation"].to_numpy(dtype=bool)]
        simulated, tasks = self._simulated_continuations(training, memberships)
        if not tasks:
            raise ValueError("no training playlist is large enough to learn the ranking weights from")
        rng = np.random.default_rng(self.seed)
        examples: list[np.ndarray] = []
        labels: list[np.ndarray] = []
        weights: np.ndarray | None = None
        # Hard-negative mining: each round adds the tracks the current weights rank highest, so
        # the ranker learns to separate the hidden tracks from their strongest competitors.
        for _ in range(self.mining_rounds):
            for seeds, targets in tasks:
                signals = simulated.signals(Playlist(positions=seeds))
                if weights is None:
                    ranking = (
                        signals[:, 0]
                        + signals[:, 1]
                        + signals[:, 2]
                        + 0.05 * signals[:, SIGNALS.index("audio_cosine")]
                    )
                else:
                    ranking = signals @ weights
                # top_k, not a bare argpartition: which of several equal scores a partition keeps
                # depends on the CPU's sort kernel, and so would the weights learned from them.
                top = top_k(ranking, self.candidates_per_playlist, exclude=seeds)
                noise = rng.choice(
                    len(ranking), size=min(self.random_negatives_per_playlist, len(ranking)), replace=False
                )
                candidates = np.setdiff1d(np.union1d(np.union1d(top, noise), targets), seeds)
                examples.append(signals[candidates])
                labels.append(np.isin(candidates, targets))
            weights, intercept = fit_ranking_weights(
                np.vstack(examples), np.concatenate(labels), self.regularization_c
            )
        self.weights_: np.ndarray = weights if weights is not None else np.zeros(len(SIGNALS), np.float32)
        self.intercept_ = intercept
        self.n_training_examples_ = int(sum(len(y) for y in labels))
        self.n_training_playlists_ = len(tasks)
        # The re-ranker learns from the same simulated continuations, on what the linear ranker
        # now puts first: the candidates it will re-rank in use.
        rerank_features: list[np.ndarray] = []
        rerank_hits: list[np.ndarray] = []
        for seeds, targets in tasks:
            playlist = Playlist(positions=seeds)
            seen = simulated.seeds(playlist)  # once, for both, as in use
            linear = simulated.weighted_score(playlist, self.weights_, seen)
            top, features = candidate_features(
                simulated,
                playlist,
                linear,
                self.candidates_per_playlist,
                seen,
                n_co_listened=self.co_listened_candidates,
            )
            rerank_features.append(features)
            rerank_hits.append(np.isin(top, targets))
        self.reranker_ = PairwiseReranker.fit(
            np.vstack(rerank_features), np.concatenate(rerank_hits), self.regularization_c
        )
        return self

    def _simulated_continuations(
        self, training: pd.DataFrame, memberships: pd.DataFrame
    ) -> tuple[CatalogIndex, list[tuple[np.ndarray, np.ndarray]]]:
        """Hide a seeded share of each training playlist; return the index without those
        memberships and each playlist's (visible positions, hidden positions)."""
        pairs = training[["playlist_id", "track_id"]].drop_duplicates()
        sizes = pairs.groupby("playlist_id")["track_id"].transform("size")
        pairs = pairs[sizes >= self.min_playlist_tracks].reset_index(drop=True)
        # A bounded, seeded sample of them: enough to learn a few dozen weights from, and the
        # fit's cost then grows with the catalog, not with catalog x playlists.
        playlists = pairs["playlist_id"].drop_duplicates()
        if self.max_training_playlists is not None and len(playlists) > self.max_training_playlists:
            kept = playlists[at_most(playlists, self.max_training_playlists, self.seed, "training")]
            pairs = pairs[pairs["playlist_id"].isin(kept)].reset_index(drop=True)
        # A seed other than the evaluation split's, so the simulated holdout is a fresh draw.
        hidden = hidden_pairs(pairs, self.holdout_share, self.seed + 1)
        hidden_keys = set(pairs.loc[hidden, "playlist_id"] + "/" + pairs.loc[hidden, "track_id"])
        member_keys = memberships["playlist_id"] + "/" + memberships["track_id"]
        # Learn from what the simulation leaves visible, exactly as evaluation will.
        simulated = self.index_.with_playlists(memberships[~member_keys.isin(hidden_keys).to_numpy()])
        positions = self.index_.track_ids.get_indexer(pairs["track_id"])
        tasks = [
            (
                group.loc[~group["hidden"], "position"].to_numpy(),
                group.loc[group["hidden"], "position"].to_numpy(),
            )
            for _, group in pairs.assign(position=positions, hidden=hidden).groupby("playlist_id", sort=True)
        ]
        return simulated, tasks

    def with_catalog(self, catalog: pd.DataFrame, memberships: pd.DataFrame) -> HybridRecommender:
        """The same learned weights over another catalog (e.g. a larger one, for benchmarks)."""
        clone = HybridRecommender(
            self.feature_names,
            self.holdout_share,
            self.candidates_per_playlist,
            self.random_negatives_per_playlist,
            self.regularization_c,
            self.mining_rounds,
            self.min_playlist_tracks,
            self.seed,
            self.co_listened_candidates,
            self.co_listening_boost,
            self.max_training_playlists,
        )
        clone.index_ = CatalogIndex.build(catalog, memberships, self.feature_names)
        clone.weights_ = self.weights_
        clone.intercept_ = self.intercept_
        clone.reranker_ = self.reranker_
        clone.n_training_examples_ = self.n_training_examples_
        return clone

    def score(self, playlist: Playlist) -> np.ndarray:
        """The linear ranker's chance that each track belongs in the playlist; the re-ranked
        candidates (never the playlist's own) above all others, scored 1 + the re-ranker's chance."""
        seen = self.index_.seeds(playlist)  # once, for both stages
        linear = self.index_.weighted_score(playlist, self.weights_, seen)
        chance = 1.0 / (1.0 + np.exp(-(linear.astype(np.float32) + np.float32(self.intercept_))))
        top, chances = self._reranked(playlist, linear, seen)
        if len(top):
            chance[top] = 1.0 + chances
        return chance

    def best_tracks(self, playlist: Playlist, k: int) -> tuple[np.ndarray, np.ndarray]:
        """`top_k(score(playlist), k, exclude=playlist.positions)` and those tracks' chances.

        When k is within the re-ranked candidates the answer is among them, so the catalog is
        scored once (the linear ranker) and the k are picked from the candidates, without the
        catalog-wide sigmoid and second partition of `score`.
        """
        if k > self.candidates_per_playlist:
            scores = self.score(playlist)
            best = top_k(scores, k, exclude=playlist.positions)
            return best, self.probability(scores[best])
        seen = self.index_.seeds(playlist)
        linear = self.index_.weighted_score(playlist, self.weights_, seen)
        top, chances = self._reranked(playlist, linear, seen)
        # Rounded as score() stores them (float32), so equal scores go, as in top_k, to the lower
        # position (`top` is in catalog order and the sort is stable).
        stored = (1.0 + chances).astype(np.float32)
        order = np.argsort(-stored, kind="stable")[: max(k, 0)]
        return top[order], self.probability(stored[order])

    def _reranked(self, playlist: Playlist, linear: np.ndarray, seen: Seeds) -> tuple[np.ndarray, np.ndarray]:
        """The re-ranked candidates (catalog order) and their chances, co-listening boosted."""
        top, features = candidate_features(
            self.index_,
            playlist,
            linear,
            self.candidates_per_playlist,
            seen,
            n_co_listened=self.co_listened_candidates,
        )
        boost = self.co_listening_boost * features[:, BOOSTED_FEATURE].astype(np.float64)
        fitted_on = features[:, : len(self.reranker_.low)]  # all of them, but in an older model
        return top, np.maximum(self.reranker_.probability(fitted_on, boost), MIN_CHANCE)

    def probability(self, scores: np.ndarray) -> np.ndarray:
        """The fitted chance that a track scored so belongs in the playlist."""
        scores = np.asarray(scores, dtype=np.float64)
        return np.where(scores > 1.0, scores - 1.0, scores)

    @property
    def signal_weights(self) -> dict[str, float]:
        return {name: float(w) for name, w in zip(SIGNALS, self.weights_, strict=True)}
