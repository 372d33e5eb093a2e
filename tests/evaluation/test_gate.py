"""The promotion gate decides on paired bootstrap intervals, and losses cannot accumulate."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, r2_score

from songrec.evaluation.bootstrap import Evidence, interval, paired_difference
from songrec.evaluation.gate import GateDecision, gate, raised_high_water

TOLERANCE = 0.01
TOLERANCES = {"recall_at_100": TOLERANCE}
RNG = np.random.default_rng(3)
BASE = RNG.uniform(0.2, 0.6, size=400)  # per-playlist Recall@100 of a first champion
TRUTH = RNG.integers(0, 5, size=2000)


def evidence(per_playlist: np.ndarray, predicted: np.ndarray | None = None) -> Evidence:
    truth = np.random.default_rng(1).normal(50, 15, size=len(TRUTH))
    return Evidence(
        per_playlist={"recall_at_100": per_playlist},
        genre_truth=TRUTH,
        genre_predicted=TRUTH if predicted is None else predicted,
        n_genres=5,
        popularity_truth=truth,
        popularity_predicted=truth + np.random.default_rng(0).normal(0, 5.0, size=len(TRUTH)),
    )


def decide(candidate: Evidence, champion: Evidence) -> GateDecision:
    return gate(
        points(candidate),
        points(champion),
        TOLERANCES,
        candidate_evidence=candidate,
        champion_evidence=champion,
    )


def points(found: Evidence) -> dict[str, float]:
    return {"recall_at_100": float(found.per_playlist["recall_at_100"].mean())}


def test_ten_steps_of_nine_tenths_of_a_tolerance_lose_at_most_one_tolerance() -> None:
    """Each candidate is 0.9 tolerance worse than the one before: within tolerance of the
    champion every time, but the high-water mark stops the slide after the first step."""
    champion = evidence(BASE)
    best = points(champion)
    promoted = []
    for step in range(1, 11):
        candidate = evidence(BASE - 0.9 * TOLERANCE * step)
        decision = gate(
            points(candidate),
            points(champion),
            TOLERANCES,
            candidate_evidence=candidate,
            champion_evidence=champion,
            best_seen=best,
        )
        if decision.passed:
            promoted.append(step)
            champion = candidate
            best = raised_high_water(best, points(candidate), list(TOLERANCES))
    assert promoted == [1]  # one step, 0.9 tolerance lost in all; never past one tolerance
    assert points(evidence(BASE))["recall_at_100"] - points(champion)["recall_at_100"] <= TOLERANCE


def test_a_gain_inside_the_noise_is_not_significantly_different_and_passes() -> None:
    noise = np.random.default_rng(5).normal(0, 0.05, size=len(BASE))
    candidate = evidence(BASE + 0.002 + noise)
    champion = evidence(BASE)
    decision = decide(candidate, champion)
    (verdict,) = decision.metrics
    assert verdict.low is not None and verdict.low < 0 < verdict.high  # the interval holds 0
    assert decision.passed and verdict.verdict.startswith("not significantly different from the champion")


def test_a_loss_beyond_the_tolerance_with_confidence_fails() -> None:
    candidate = evidence(BASE - 0.03)
    champion = evidence(BASE)
    decision = decide(candidate, champion)
    assert not decision.passed
    assert decision.reason.startswith("recall_at_100: worse than the champion beyond 0.01 (-0.0300")


def test_a_clear_gain_is_better_and_identical_models_differ_by_nothing() -> None:
    champion = evidence(BASE)
    better = gate(
        {"recall_at_100": 0.5}, points(champion), TOLERANCES,
        candidate_evidence=evidence(BASE + 0.05), champion_evidence=champion,
    )  # fmt: skip
    assert better.passed and better.metrics[0].verdict.startswith("better than the champion")
    same = paired_difference(champion, champion, "recall_at_100")
    assert (same.point, same.low, same.high) == (0.0, 0.0, 0.0)


def test_intervals_are_centred_on_the_metrics_as_sklearn_computes_them() -> None:
    predicted = np.where(RNG.uniform(size=len(TRUTH)) < 0.7, TRUTH, RNG.integers(0, 5, size=len(TRUTH)))
    found = evidence(BASE, predicted)
    f1 = interval(found, "genre_macro_f1")
    assert f1.point == pytest.approx(f1_score(TRUTH, predicted, average="macro", labels=list(range(5))))
    assert f1.low < f1.point < f1.high and f1.high - f1.low < 0.1
    r2 = interval(found, "popularity_r2")
    assert r2.point == pytest.approx(r2_score(found.popularity_truth, found.popularity_predicted))
    assert r2.low < r2.point < r2.high
    recall = interval(found, "recall_at_100")
    assert recall.point == pytest.approx(BASE.mean()) and recall.low < recall.point < recall.high


def test_without_a_champion_the_first_version_passes() -> None:
    assert gate({"recall_at_100": 0.1}, None, TOLERANCES).passed
