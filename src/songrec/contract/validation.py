"""The data contract checked: rows held to config/schema.yaml, with a readable report.

A pure core (a DataFrame and the schema in, the rows that pass and a report out) shared by the
validate stage and the API's /labels route. Built on a pandera schema made from the contract:
required columns, dtypes, nullability, ranges, allowed values, id formats, the unique key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import pandera.pandas as pa

from songrec.contract.schema import ColumnRule, DataSchema

# Numbers are checked as float64 (whole-number rules are checked before); _cast restores ints.
CHECKED_DTYPES = {"str": str, "int": "float64", "float": "float64"}
PANDAS_DTYPES = {"str": "object", "int": "int64", "float": "float64"}
MAX_EXAMPLES = 5


@dataclass(frozen=True)
class ValidationResult:
    valid_rows: pd.DataFrame
    report: dict[str, Any]

    @property
    def passed(self) -> bool:
        return bool(self.report["passed"])


# --------------------------------------------------------------------------- schema


def column_checks(rule: ColumnRule) -> list[pa.Check]:
    """The pandera checks for one column's contract."""
    checks: list[pa.Check] = []
    if rule.min is not None and rule.max is not None:
        checks.append(
            pa.Check.in_range(
                rule.min, rule.max, include_min=not rule.min_exclusive, include_max=not rule.max_exclusive
            )
        )
    elif rule.min is not None:
        checks.append(pa.Check.gt(rule.min) if rule.min_exclusive else pa.Check.ge(rule.min))
    elif rule.max is not None:
        checks.append(pa.Check.lt(rule.max) if rule.max_exclusive else pa.Check.le(rule.max))
    if rule.allowed is not None:
        checks.append(pa.Check.isin(list(rule.allowed)))
    if rule.pattern is not None:
        checks.append(pa.Check.str_matches(f"^(?:{rule.pattern})$"))
    return checks


def build_pandera_schema(schema: DataSchema) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        columns={
            rule.name: pa.Column(
                CHECKED_DTYPES[rule.dtype], checks=column_checks(rule), nullable=rule.nullable, required=True
            )
            for rule in schema.columns
        },
        unique=list(schema.unique),
        report_duplicates="exclude_first",
        strict=False,
    )


# --------------------------------------------------------------------------- core


def validate_tracks(
    frame: pd.DataFrame, schema: DataSchema, max_quarantined_share: float
) -> ValidationResult:
    """Check `frame` against `schema`; return the rows that pass and the full report.

    Row-level violations (a value out of range, a duplicate key, a value of the wrong type)
    quarantine their rows; column-level ones (a missing column, a column of the wrong kind)
    fail the data outright.
    """
    frame = frame.reset_index(drop=True)
    numeric, type_failures = _as_numbers(frame, schema)
    # Rows whose values are not even numbers are quarantined for that and checked no further.
    checked = numeric.drop(index=type_failures["index"].astype(int).unique())
    failures = pd.concat(
        [cases for cases in (type_failures, _failure_cases(checked, schema)) if not cases.empty]
        or [type_failures],
        ignore_index=True,
    )
    violations = summarize_failures(failures, schema)
    bad_rows = sorted({int(i) for i in failures["index"].dropna()})
    structural = [v for v in violations if v["level"] == "column"]
    share = len(bad_rows) / len(frame) if len(frame) else 1.0
    problems = []
    if len(frame) == 0:
        problems.append("the data has no rows")
    if structural:
        problems.append(f"{len(structural)} column-level violation(s)")
    if share > max_quarantined_share:
        problems.append(
            f"{len(bad_rows)} of {len(frame)} rows ({share:.2%}) break row-level rules, "
            f"above the tolerated {max_quarantined_share:.2%} (validate.max_quarantined_share)"
        )
    valid = _cast(numeric.drop(index=bad_rows), schema) if not problems else frame.iloc[:0]
    report = {
        "passed": not problems,
        "rows": len(frame),
        "valid_rows": len(valid),
        "quarantined_rows": len(bad_rows),
        "quarantined_lines": [row + 2 for row in bad_rows[:100]],
        "max_quarantined_share": max_quarantined_share,
        "problems": problems,
        "violations": violations,
        # Columns the contract does not name: dropped from the validated data, but listed, so a
        # source that grew a column (or renamed one) shows it instead of losing it unseen.
        "extra_columns_dropped": [str(c) for c in frame.columns if c not in set(schema.column_names)],
    }
    return ValidationResult(valid_rows=valid.reset_index(drop=True), report=report)


def _as_numbers(frame: pd.DataFrame, schema: DataSchema) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Numeric columns as float64, and the rows whose value is not a number of the right kind.

    A CSV column with one stray word in it arrives as text; reading it as numbers keeps the
    range checks meaningful for the other rows and names the stray values as type errors.
    """
    converted = {}
    cases = []
    for rule in schema.columns:
        if rule.dtype == "str" or rule.name not in frame:
            continue
        column = frame[rule.name]
        if pd.api.types.is_bool_dtype(column):
            continue  # a boolean column is a column-level type error: pandera names it
        numbers = pd.to_numeric(column, errors="coerce")
        not_number = numbers.isna() & column.notna()
        if rule.dtype == "int":
            not_number |= numbers.notna() & (numbers % 1 != 0)
        for index, value in column[not_number].items():
            cases.append(
                {
                    "schema_context": "Column",
                    "column": rule.name,
                    "check": f"dtype({rule.dtype})",
                    "failure_case": value,
                    "index": index,
                }
            )
        converted[rule.name] = numbers.astype("float64")
    failures = pd.DataFrame(cases, columns=["schema_context", "column", "check", "failure_case", "index"])
    return frame.assign(**converted), failures


def _failure_cases(frame: pd.DataFrame, schema: DataSchema) -> pd.DataFrame:
    columns = ["schema_context", "column", "check", "failure_case", "index"]
    try:
        build_pandera_schema(schema).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
        return cases[columns].reset_index(drop=True)
    return pd.DataFrame(columns=columns)


def summarize_failures(failures: pd.DataFrame, schema: DataSchema) -> list[dict[str, Any]]:
    """One entry per (column, rule): how many rows, up to five examples and source lines."""
    violations = []
    unique_key = ", ".join(schema.unique)
    for (_context, column, check), group in failures.groupby(
        ["schema_context", "column", "check"], dropna=False, sort=False
    ):
        rows = sorted({int(i) for i in group["index"].dropna()})
        is_uniqueness = check == "multiple_fields_uniqueness"
        if check == "column_in_dataframe":
            column = group["failure_case"].iloc[0]
            rule = "required column is missing"
        elif is_uniqueness:
            column = unique_key
            rule = f"duplicate key ({unique_key})"
        else:
            rule = _describe_check(str(check), schema, column)
        examples = _examples(group, rows, is_uniqueness, _rule_or_none(schema, column))
        violations.append(
            {
                "column": None if pd.isna(column) else str(column),
                "rule": rule,
                "check": str(check),
                "level": "row" if rows else "column",
                "count": len(rows) if rows else 1,
                "examples": examples,
                "source_lines": [row + 2 for row in rows[:MAX_EXAMPLES]],  # header is line 1
            }
        )
    # the same duplicate is reported once per key column: keep one entry for it
    seen: set[tuple[Any, ...]] = set()
    unique_violations = []
    for violation in violations:
        key = (violation["column"], violation["rule"])
        if key not in seen:
            seen.add(key)
            unique_violations.append(violation)
    return unique_violations


def _rule_or_none(schema: DataSchema, column: Any) -> ColumnRule | None:
    try:
        return schema.column(str(column))
    except KeyError:
        return None


def _examples(
    group: pd.DataFrame, rows: list[int], is_uniqueness: bool, rule: ColumnRule | None
) -> list[Any]:
    if is_uniqueness:
        by_row = group.groupby("index")["failure_case"].apply(lambda v: "|".join(map(str, v)))
        return [str(value) for value in by_row.iloc[:MAX_EXAMPLES]]
    values = []
    for raw in group["failure_case"]:
        value = None if pd.isna(raw) else raw.item() if hasattr(raw, "item") else raw
        if rule is not None and rule.dtype == "int" and isinstance(value, float) and value.is_integer():
            value = int(value)  # checked as a float, shown as the integer it was
        if value not in values:
            values.append(value)
        if len(values) == MAX_EXAMPLES:
            break
    return values


def _describe_check(check: str, schema: DataSchema, column: Any) -> str:
    try:
        rule = schema.column(str(column))
    except KeyError:
        return check
    if check == "not_nullable":
        return "null value in a non-nullable column"
    if check.startswith("dtype("):
        return f"value is not of type {rule.dtype}"
    if check.startswith(("in_range", "greater_than", "less_than")):
        return f"value outside {rule.describe_range()}"
    if check.startswith("isin"):
        return f"value not in the allowed set {list(rule.allowed or ())}"
    if check.startswith("str_matches"):
        return f"value does not match the pattern {rule.pattern}"
    return check


def _cast(frame: pd.DataFrame, schema: DataSchema) -> pd.DataFrame:
    casts = {rule.name: frame[rule.name].astype(PANDAS_DTYPES[rule.dtype]) for rule in schema.columns}
    return frame.assign(**casts)[list(schema.column_names)]


def summary_text(report: dict[str, Any], report_path: str) -> str:
    """A readable summary of a report, for the terminal and the Airflow task log."""
    verdict = "passed" if report["passed"] else "FAILED"
    lines = [
        f"validation {verdict}: {report['rows']} rows, {report['quarantined_rows']} quarantined "
        f"(report: {report_path})"
    ]
    lines += [f"  problem: {problem}" for problem in report["problems"]]
    if report.get("extra_columns_dropped"):
        lines.append(f"  extra columns dropped: {', '.join(report['extra_columns_dropped'])}")
    for v in report["violations"]:
        if v["level"] == "column":
            lines.append(f"  - {v['column']}: {v['rule']}")
        else:
            lines.append(
                f"  - {v['column']}: {v['rule']} ({v['count']} rows, e.g. {v['examples'][:3]} "
                f"at lines {v['source_lines'][:3]})"
            )
    return "\n".join(lines)
