"""config/schema.yaml read into the data contract's types (contract.schema.DataSchema)."""

from __future__ import annotations

from songrec.config.rules import Section
from songrec.contract.schema import DTYPES, ColumnRule, DataSchema


def read_schema(schema: Section) -> DataSchema:
    columns_section = schema.section("columns")
    rules = []
    for name in columns_section.data:
        spec = columns_section.section(name)
        dtype = spec.get("dtype", str, check=lambda v: v in DTYPES, rule=f"must be one of {DTYPES}")
        bound = (int, float)
        rule = ColumnRule(
            name=name,
            dtype=dtype,
            nullable=spec.get("nullable", bool, default=False),
            min=spec.get("min", bound, default=None),
            max=spec.get("max", bound, default=None),
            min_exclusive=spec.get("min_exclusive", bool, default=False),
            max_exclusive=spec.get("max_exclusive", bool, default=False),
            allowed=tuple(spec.get("allowed", list, default=None) or ()) or None,
            pattern=spec.get("pattern", str, default=None),
        )
        if rule.min is not None and rule.max is not None and rule.min > rule.max:
            raise spec.fail("min", rule.min, f"must not exceed max ({rule.max})")
        rules.append(rule)
    names = {rule.name for rule in rules}

    def known_columns(key: str) -> tuple[str, ...]:
        values = schema.string_list(key)
        unknown = [value for value in values if value not in names]
        if unknown:
            raise schema.fail(key, list(values), f"names columns not in columns: {unknown}")
        return values

    targets = schema.section("targets")
    genre = targets.get("genre", str, check=lambda v: v in names, rule="must name a column")
    popularity = targets.get("popularity", str, check=lambda v: v in names, rule="must name a column")
    if not next(r for r in rules if r.name == genre).allowed:
        raise targets.fail("genre", genre, "the genre column must list its allowed values")
    return DataSchema(
        columns=tuple(rules),
        unique=known_columns("unique"),
        audio_features=known_columns("audio_features"),
        genre_target=genre,
        popularity_target=popularity,
    )
