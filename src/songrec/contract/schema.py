"""The data contract as types: each column's rule and the schema (config/schema.yaml).

Read by config (which builds it from the YAML), checked by contract.validation, and used by
the stages and the API's request models alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DTYPES = ("str", "int", "float")


@dataclass(frozen=True)
class ColumnRule:
    """The contract of one column of the source data."""

    name: str
    dtype: str
    nullable: bool
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    max_exclusive: bool = False
    allowed: tuple[Any, ...] | None = None
    pattern: str | None = None

    def describe_range(self) -> str:
        low = "(" if self.min_exclusive else "["
        high = ")" if self.max_exclusive else "]"
        lo = "-inf" if self.min is None else f"{self.min:g}"
        hi = "inf" if self.max is None else f"{self.max:g}"
        return f"{low}{lo}, {hi}{high}"


@dataclass(frozen=True)
class DataSchema:
    """config/schema.yaml: the data contract of the source and of API requests."""

    columns: tuple[ColumnRule, ...]
    unique: tuple[str, ...]
    audio_features: tuple[str, ...]
    genre_target: str
    popularity_target: str

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(rule.name for rule in self.columns)

    def column(self, name: str) -> ColumnRule:
        for rule in self.columns:
            if rule.name == name:
                return rule
        raise KeyError(name)

    @property
    def genres(self) -> tuple[str, ...]:
        allowed = self.column(self.genre_target).allowed
        return tuple(str(genre) for genre in allowed or ())
