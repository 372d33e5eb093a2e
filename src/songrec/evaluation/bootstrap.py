"""Bootstrap intervals of the gated metrics, alone or paired (a candidate against a champion).

A metric here is computed from units that can be resampled: evaluation playlists for the
continuation metrics (a mean over playlists), test tracks for genre macro-F1 and popularity R²
(computed over the resampled tracks). Paired: both models are resampled with the same units,
so what varies is the difference, not the sample. Percentile intervals, seeded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 1000


@dataclass(frozen=True)
class Evidence:
    """What one model's gated metrics are computed from, unit by unit."""

    per_playlist: dict[str, np.ndarray]  # recall_at_k, ndcg_at_k: one value per evaluation playlist
    genre_truth: np.ndarray  # class codes of the test tracks (-1: a genre the model does not know)
    genre_predicted: np.ndarray
    n_genres: int
    popularity_truth: np.ndarray
    popularity_predicted: np.ndarray

    @property
    def n_playlists(self) -> int:
        return len(next(iter(self.per_playlist.values()), ()))

    def units(self, metric: str) -> int:
        """How many units `metric` is computed from (test tracks, or evaluation playlists)."""
        if metric == "genre_macro_f1":
            return len(self.genre_truth)
        if metric == "popularity_r2":
            return len(self.popularity_truth)
        return self.n_playlists

    def metric(self, metric: str, rows: np.ndarray) -> np.ndarray:
        """The metric on each resample: `rows` is (resamples, units) of unit indices."""
        if metric == "genre_macro_f1":
            return _macro_f1(self.genre_truth[rows], self.genre_predicted[rows], self.n_genres)
        if metric == "popularity_r2":
            return _r2(self.popularity_truth[rows], self.popularity_predicted[rows])
        return self.per_playlist[metric][rows].mean(axis=1)


@dataclass(frozen=True)
class Interval:
    point: float
    low: float
    high: float

    def as_list(self) -> list[float]:
        return [self.low, self.high]


def resample_rows(n_units: int, resamples: int, seed: int) -> np.ndarray:
    """Seeded bootstrap indices, (resamples, n_units)."""
    return np.random.default_rng(seed).integers(0, n_units, size=(resamples, n_units))


def interval(evidence: Evidence, metric: str, resamples: int = RESAMPLES, seed: int = 0) -> Interval:
    """The metric's point estimate and its percentile bootstrap interval."""
    rows = resample_rows(evidence.units(metric), resamples, seed)
    point = float(evidence.metric(metric, np.arange(evidence.units(metric))[None, :])[0])
    return Interval(point, *_percentiles(evidence.metric(metric, rows)))


def paired_difference(
    candidate: Evidence, champion: Evidence, metric: str, resamples: int = RESAMPLES, seed: int = 0
) -> Interval:
    """candidate - champion on the same units: its point estimate and bootstrap interval."""
    n = candidate.units(metric)
    if champion.units(metric) != n:
        raise ValueError(f"{metric}: the two models were not measured on the same units")
    rows = resample_rows(n, resamples, seed)
    every = np.arange(n)[None, :]
    point = float(candidate.metric(metric, every)[0] - champion.metric(metric, every)[0])
    return Interval(point, *_percentiles(candidate.metric(metric, rows) - champion.metric(metric, rows)))


def _percentiles(samples: np.ndarray) -> tuple[float, float]:
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def _macro_f1(truth: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Macro-F1 over the classes, per resample row (sklearn's, with every class in `labels`)."""
    resamples = truth.shape[0]
    offsets = (np.arange(resamples) * n_classes)[:, None]
    hit = truth == predicted
    true_positive = _counts(np.where(hit, predicted, -1), offsets, resamples, n_classes)
    predicted_count = _counts(predicted, offsets, resamples, n_classes)
    truth_count = _counts(truth, offsets, resamples, n_classes)
    denominator = predicted_count + truth_count
    f1 = np.divide(2 * true_positive, denominator, out=np.zeros_like(denominator), where=denominator > 0)
    result: np.ndarray = f1.mean(axis=1)
    return result


def _counts(codes: np.ndarray, offsets: np.ndarray, resamples: int, n_classes: int) -> np.ndarray:
    """How often each class occurs in each row; code -1 is not counted."""
    valid = codes >= 0
    flat = (codes + offsets)[valid]
    return np.bincount(flat, minlength=resamples * n_classes).reshape(resamples, n_classes).astype(float)


def _r2(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    residual = ((truth - predicted) ** 2).sum(axis=1)
    total = ((truth - truth.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    result: np.ndarray = 1.0 - np.divide(residual, total, out=np.zeros_like(residual), where=total > 0)
    return result


def intervals(evidence: Evidence, metrics: Sequence[str], seed: int) -> dict[str, Interval]:
    """Each metric's interval, with its own seeded resamples (stable whatever else is asked)."""
    return {metric: interval(evidence, metric, seed=seed) for metric in metrics}
