"""The monitoring charts as PNG (matplotlib, rendered on the server: no script from anywhere)."""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    import matplotlib.pyplot as plt

CHARTS = ("drift_share", "feature_drift", "quality")


def _pyplot() -> Any:
    """matplotlib, imported at the first chart rather than at the API's start (it is slow to import)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot

    return matplotlib.pyplot


def render(name: str, frames: dict[str, pd.DataFrame]) -> bytes:
    """One chart, by name, from the store's tables (drift_runs, online_quality, promotions)."""
    figure = {"drift_share": drift_share, "feature_drift": feature_drift, "quality": quality}[name](frames)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    _pyplot().close(figure)
    return buffer.getvalue()


def _empty(axes: Any, message: str) -> None:
    axes.text(0.5, 0.5, message, ha="center", va="center", transform=axes.transAxes, color="grey")
    axes.set_xticks([])
    axes.set_yticks([])


def _time_axis(axes: Any, times: pd.Series, least: pd.Timedelta) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Scale the time axis to the data (with one point, matplotlib spans years), at least `least`
    wide; return its limits."""
    low, high = pd.Timestamp(times.min()), pd.Timestamp(times.max())
    pad = max((high - low) * 0.05, least / 2)
    axes.set_xlim(low - pad, high + pad)
    return low - pad, high + pad


def _promotions(axes: Any, promotions: pd.DataFrame, span: tuple[pd.Timestamp, pd.Timestamp]) -> None:
    """The moves of `champion` within the chart's time span, as vertical lines."""
    if promotions.empty:
        return
    times = pd.to_datetime(promotions["time"], utc=True)
    low, high = (moment.tz_localize("UTC") if moment.tzinfo is None else moment for moment in span)
    for row in promotions[(times >= low) & (times <= high)].itertuples(index=False):
        color = "tab:green" if row.action == "promote" else "tab:red"
        axes.axvline(pd.Timestamp(row.time), color=color, linestyle="--", linewidth=1)
        axes.annotate(
            f"{row.action} v{row.to_version}",
            (pd.Timestamp(row.time), 1.0),
            xycoords=("data", "axes fraction"),
            rotation=90,
            va="top",
            ha="right",
            fontsize=7,
            color=color,
        )


def drift_share(frames: dict[str, pd.DataFrame]) -> plt.Figure:
    runs = frames["drift_runs"].dropna(subset=["drift_share"])
    figure, axes = _pyplot().subplots(figsize=(8, 3))
    if runs.empty:
        _empty(axes, "no drift runs yet: run `songrec monitor`")
        return figure
    times = pd.to_datetime(runs["time"], utc=True)
    axes.plot(times, runs["drift_share"], marker="o", label="share of features drifted")
    axes.plot(times, runs["drift_threshold"], color="grey", linestyle=":", label="dataset drift threshold")
    drifted = runs["dataset_drift"].astype(bool).to_numpy()
    axes.scatter(
        times[drifted], runs["drift_share"][drifted], color="tab:red", zorder=3, label="dataset drift"
    )
    _promotions(axes, frames["promotions"], _time_axis(axes, times, pd.Timedelta(hours=2)))
    axes.set_ylim(0, 1.05)
    axes.set_title("Data drift of served traffic against the training reference")
    axes.legend(loc="upper left", fontsize=8)
    figure.autofmt_xdate()
    return figure


def feature_drift(frames: dict[str, pd.DataFrame]) -> plt.Figure:
    runs = frames["drift_runs"].dropna(subset=["features"])
    figure, axes = _pyplot().subplots(figsize=(8, 3.5))
    if runs.empty:
        _empty(axes, "no drift runs yet")
        return figure
    latest = runs.iloc[-1]
    features = latest["features"] if isinstance(latest["features"], dict) else json.loads(latest["features"])
    names = sorted(features, key=lambda name: features[name]["score"], reverse=True)
    scores = [features[name]["score"] for name in names]
    colors = ["tab:red" if features[name]["drifted"] else "tab:blue" for name in names]
    axes.barh(names, scores, color=colors)
    axes.invert_yaxis()
    axes.set_xlabel("drift score (red: drifted by its own test)")
    axes.set_title(f"Per-feature drift, run of {pd.Timestamp(latest['time']):%Y-%m-%d %H:%M} UTC")
    return figure


def quality(frames: dict[str, pd.DataFrame]) -> plt.Figure:
    daily = frames["online_quality"]
    figure, (hits, similarity) = _pyplot().subplots(1, 2, figsize=(10, 3.5))
    if daily.empty:
        _empty(hits, "no feedback yet")
        _empty(similarity, "no traffic yet")
        return figure
    daily = daily.assign(day=pd.to_datetime(daily["day"]))
    for version, rows in daily.groupby("model_version"):
        rows = rows.sort_values("day")
        hits.plot(rows["day"], rows["hit_rate"], marker="o", label=f"v{version}")
        similarity.plot(rows["day"], rows["mean_similarity"], marker="o", label=f"v{version}")
    for axes, title in (
        (hits, "Online hit rate (played or liked)"),
        (similarity, "Playlist-to-recommendation similarity"),
    ):
        _promotions(axes, frames["promotions"], _time_axis(axes, daily["day"], pd.Timedelta(days=2)))
        axes.set_title(title)
        axes.legend(title="model", fontsize=8)
        axes.tick_params(axis="x", rotation=30)
    return figure
