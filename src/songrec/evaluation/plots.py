"""PNG plots of the evaluation, for `dvc plots show`, MLflow and people (matplotlib, offline)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display here, in CI or in Airflow workers
import matplotlib.pyplot as plt
import numpy as np

from songrec.core.io import atomic_path

# Fixed metadata keeps the PNG bytes identical for identical figures (reproducible DVC outputs).
PNG_METADATA = {"Software": None}


def _save(figure: plt.Figure, path: Path) -> None:
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight", metadata=PNG_METADATA)
    plt.close(figure)


def confusion_matrix_plot(matrix: Sequence[Sequence[int]], labels: Sequence[str], path: Path) -> None:
    counts = np.asarray(matrix, dtype=float)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    figure, axes = plt.subplots(figsize=(6, 5))
    image = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted genre")
    axes.set_ylabel("true genre")
    for i in range(len(labels)):
        for j in range(len(labels)):
            axes.text(
                j,
                i,
                f"{shares[i, j]:.2f}",
                ha="center",
                va="center",
                color="white" if shares[i, j] > 0.5 else "black",
                fontsize=8,
            )
    figure.colorbar(image, ax=axes, label="share of the true genre")
    axes.set_title("Genre classifier on the test split (rows sum to 1)")
    _save(figure, path)


def popularity_plot(actual: np.ndarray, predicted: np.ndarray, r2: float, path: Path) -> None:
    figure, axes = plt.subplots(figsize=(5.5, 5))
    hexes = axes.hexbin(actual, predicted, gridsize=40, cmap="viridis", mincnt=1)
    axes.plot([0, 100], [0, 100], color="red", linewidth=1, label="perfect")
    axes.set_xlabel("actual popularity")
    axes.set_ylabel("predicted popularity")
    axes.set_title(f"Popularity on the test split (R² = {r2:.3f})")
    axes.legend(loc="upper left")
    figure.colorbar(hexes, ax=axes, label="tracks")
    _save(figure, path)


def continuation_plot(results: Mapping[str, Mapping[str, float]], ks: Sequence[int], path: Path) -> None:
    """Recall@K and NDCG@K of every approach, side by side."""
    figure, (recall_axes, ndcg_axes) = plt.subplots(1, 2, figsize=(10, 4), sharey=False)
    names = list(results)
    width = 0.8 / len(names)
    for offset, name in enumerate(names):
        positions = np.arange(len(ks)) + offset * width
        recall_axes.bar(positions, [results[name][f"recall_at_{k}"] for k in ks], width, label=name)
        ndcg_axes.bar(positions, [results[name][f"ndcg_at_{k}"] for k in ks], width, label=name)
    for axes, metric in ((recall_axes, "Recall"), (ndcg_axes, "NDCG")):
        axes.set_xticks(np.arange(len(ks)) + 0.4 - width / 2, [f"@{k}" for k in ks])
        axes.set_title(f"Playlist continuation: {metric}@K")
        axes.grid(axis="y", alpha=0.3)
    recall_axes.legend(loc="upper left")
    _save(figure, path)


def diversity_tradeoff_plot(
    table: Mapping[str, Mapping[str, float]], k: int, default: int | None, path: Path
) -> None:
    """Recall@k and NDCG@10 against distinct artists in the top 10, one point per diversity
    setting (max_per_artist), the served default marked."""
    figure, axes = plt.subplots(figsize=(6.5, 4.5))
    distinct = [row["distinct_artists_at_10"] for row in table.values()]
    served = "10" if default is None else str(default)
    for metric, marker in ((f"recall_at_{k}", "o"), ("ndcg_at_10", "s")):
        values = [row[metric] for row in table.values()]
        axes.plot(distinct, values, marker=marker, label=metric.replace("_at_", "@"))
        if metric != "ndcg_at_10":
            continue
        # The settings, once, under the NDCG points (close settings alternate above and below).
        for number, (setting, x, y) in enumerate(zip(table, distinct, values, strict=True)):
            axes.annotate(
                f"{setting}{' (default)' if setting == served else ''}",
                (x, y),
                textcoords="offset points",
                xytext=(0, -14 if number % 2 == 0 else 8),
                ha="center",
                fontsize=8,
                fontweight="bold" if setting == served else "normal",
            )
    axes.set_xlabel("distinct artists in the top 10 (mean over playlists)")
    axes.set_ylabel("score")
    axes.set_title("Diversity against accuracy, by max_per_artist (10: no cap)")
    axes.grid(alpha=0.3)
    axes.legend()
    _save(figure, path)
