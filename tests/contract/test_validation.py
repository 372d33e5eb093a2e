"""validate: every contract rule of config/schema.yaml, the report, and the failure path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from songrec.config.manager import ConfigurationManager
from songrec.contract.validation import validate_tracks
from songrec.core.errors import ValidationFailed
from songrec.stages import ingest, validate


@pytest.fixture
def schema(project: Path):  # type: ignore[no-untyped-def]
    return ConfigurationManager(project).schema


@pytest.fixture
def frame(sample_frame: pd.DataFrame) -> pd.DataFrame:
    return sample_frame.head(400).copy()


def violation(report: dict, column: str, rule_part: str) -> dict:
    matches = [v for v in report["violations"] if v["column"] == column and rule_part in v["rule"]]
    assert matches, f"no violation for {column} / {rule_part}: {report['violations']}"
    return matches[0]


def test_shipped_sample_passes(frame: pd.DataFrame, schema) -> None:  # type: ignore[no-untyped-def]
    result = validate_tracks(frame, schema, max_quarantined_share=0.0)
    assert result.passed, result.report
    assert len(result.valid_rows) == len(frame)
    assert result.valid_rows["key"].dtype == np.int64


def test_extra_columns_are_dropped_and_listed(frame: pd.DataFrame, schema) -> None:  # type: ignore[no-untyped-def]
    result = validate_tracks(frame.assign(mood="happy", bpm_guess=120), schema, 0.0)
    assert result.passed and result.report["extra_columns_dropped"] == ["mood", "bpm_guess"]
    assert "mood" not in result.valid_rows.columns
    assert validate_tracks(frame, schema, 0.0).report["extra_columns_dropped"] == []


def test_missing_column_is_structural(frame: pd.DataFrame, schema) -> None:  # type: ignore[no-untyped-def]
    result = validate_tracks(frame.drop(columns=["energy"]), schema, 0.5)
    assert not result.passed
    found = violation(result.report, "energy", "required column is missing")
    assert found["level"] == "column"


def test_out_of_range_values_report_column_rule_examples_and_lines(frame, schema) -> None:  # type: ignore[no-untyped-def]
    frame.loc[[3, 10, 11], "danceability"] = [1.5, -0.2, 7.0]
    frame.loc[5, "key"] = 12
    frame.loc[6, "tempo"] = 0.0
    frame.loc[7, "track_popularity"] = 101
    result = validate_tracks(frame, schema, max_quarantined_share=0.0)
    assert not result.passed
    dance = violation(result.report, "danceability", "outside [0, 1]")
    assert dance["count"] == 3
    assert sorted(dance["examples"]) == [-0.2, 1.5, 7.0]
    assert dance["source_lines"] == [5, 12, 13]  # the header is line 1
    assert violation(result.report, "key", "outside [0, 11]")["examples"] == [12]
    assert violation(result.report, "tempo", "outside (0, 300]")["count"] == 1
    assert violation(result.report, "track_popularity", "outside [0, 100]")["count"] == 1


def test_wrong_dtype_names_the_stray_values(frame: pd.DataFrame, schema) -> None:  # type: ignore[no-untyped-def]
    frame["mode"] = frame["mode"].astype(object)
    frame.loc[4, "mode"] = "minor"
    frame["duration_ms"] = frame["duration_ms"].astype(float)
    frame.loc[8, "duration_ms"] = 1234.5
    result = validate_tracks(frame, schema, max_quarantined_share=0.0)
    assert violation(result.report, "mode", "not of type int")["examples"] == ["minor"]
    assert violation(result.report, "duration_ms", "not of type int")["examples"] == [1234.5]
    assert "mode" not in {v["column"] for v in result.report["violations"] if "allowed" in v["rule"]}


def test_whole_column_of_text_fails(frame: pd.DataFrame, schema) -> None:  # type: ignore[no-untyped-def]
    frame["energy"] = "loud"
    result = validate_tracks(frame, schema, max_quarantined_share=0.01)
    assert not result.passed
    assert violation(result.report, "energy", "not of type float")["count"] == len(frame)


@pytest.mark.parametrize(
    ("column", "value", "rule"),
    [
        ("playlist_genre", "polka", "not in the allowed set"),
        ("track_id", "not-an-id", "does not match the pattern"),
        ("track_album_release_date", "someday", "does not match the pattern"),
        ("playlist_id", None, "null value"),
    ],
)
def test_categories_ids_and_nulls(frame, schema, column: str, value: object, rule: str) -> None:  # type: ignore[no-untyped-def]
    frame.loc[2, column] = value
    result = validate_tracks(frame, schema, max_quarantined_share=0.0)
    assert violation(result.report, column, rule)["source_lines"] == [4]


def test_duplicate_key_rows(frame: pd.DataFrame, schema) -> None:  # type: ignore[no-untyped-def]
    doubled = pd.concat([frame, frame.iloc[[0, 1]]], ignore_index=True)
    result = validate_tracks(doubled, schema, max_quarantined_share=0.0)
    found = violation(result.report, "track_id, playlist_id, playlist_subgenre", "duplicate key")
    assert found["count"] == 2
    assert found["source_lines"] == [len(frame) + 2, len(frame) + 3]


def test_a_few_bad_rows_are_quarantined_within_tolerance(frame, schema) -> None:  # type: ignore[no-untyped-def]
    frame.loc[9, "valence"] = 3.0
    result = validate_tracks(frame, schema, max_quarantined_share=0.01)
    assert result.passed
    assert result.report["quarantined_rows"] == 1
    assert len(result.valid_rows) == len(frame) - 1
    assert result.report["quarantined_lines"] == [11]
    assert (result.valid_rows["valence"] <= 1.0).all()


def test_empty_frame_fails(frame: pd.DataFrame, schema) -> None:  # type: ignore[no-untyped-def]
    result = validate_tracks(frame.iloc[:0], schema, max_quarantined_share=0.5)
    assert not result.passed
    assert "the data has no rows" in result.report["problems"]


def test_stage_fails_with_summary_writes_report_and_keeps_last_good_output(
    project: Path, sample_frame: pd.DataFrame
) -> None:
    manager = ConfigurationManager(project)
    ingest.run(manager)
    validate.run(manager)
    good = manager.validate().validated_tracks.read_bytes()

    broken = sample_frame.copy()
    broken.loc[: len(broken) // 2, "loudness"] = 40.0  # half the rows out of range
    broken.to_csv(project / "data/source/spotify_songs.csv.gz", index=False, compression="gzip")
    ingest.run(manager)
    with pytest.raises(ValidationFailed) as error:
        validate.run(manager)
    summary = str(error.value)
    assert "validation FAILED" in summary
    assert "loudness: value outside [-60, 5]" in summary
    assert "validate.max_quarantined_share" in summary
    report = json.loads(manager.validate().report.read_text())
    assert report["passed"] is False
    assert manager.validate().validated_tracks.read_bytes() == good
