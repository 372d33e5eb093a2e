"""The monitoring charts are scaled to the data: one run does not draw an axis years wide."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from songrec.monitoring.charts import drift_share, quality

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def frames(n_runs: int) -> dict[str, pd.DataFrame]:
    times = [NOW - timedelta(hours=i) for i in range(n_runs)]
    return {
        "drift_runs": pd.DataFrame(
            {"time": times, "drift_share": 0.3, "drift_threshold": 0.5, "dataset_drift": False}
        ),
        "online_quality": pd.DataFrame(
            {"day": [NOW.date()], "model_version": ["1"], "hit_rate": [0.1], "mean_similarity": [0.8]}
        ),
        # a promotion long before the data: drawn only if it is within the span
        "promotions": pd.DataFrame(
            {"time": [NOW - timedelta(days=900), NOW], "action": ["promote"] * 2, "to_version": ["1", "2"]}
        ),
    }


def test_one_point_spans_hours_not_years() -> None:
    axes = drift_share(frames(1)).axes[0]
    low, high = axes.get_xlim()  # days, as matplotlib counts dates
    assert 0 < high - low <= 1
    assert [text.get_text() for text in axes.texts] == ["promote v2"]  # the old move is off the chart


def test_the_span_follows_the_runs() -> None:
    low, high = drift_share(frames(48)).axes[0].get_xlim()
    assert 47 / 24 <= high - low <= 3


def test_one_day_of_quality_spans_days() -> None:
    for axes in quality(frames(1)).axes:
        low, high = axes.get_xlim()
        assert 1 <= high - low <= 3
