"""Feature helpers shared by the stages, the models and the API."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd


def release_year(dates: pd.Series) -> pd.Series:
    """The year of a Spotify release date given as YYYY, YYYY-MM or YYYY-MM-DD."""
    return dates.astype(str).str.slice(0, 4).astype("int64")


def numeric_features(audio_features: Sequence[str]) -> tuple[str, ...]:
    """What the models see of a track as numbers: its audio features and release year."""
    return (*audio_features, "year")
