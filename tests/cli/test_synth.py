"""`songrec synth`: its file is a pipeline source by configuration alone."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from songrec.cli.main import main
from songrec.config.manager import ConfigurationManager
from songrec.stages import ingest, validate
from tests.conftest import edit_yaml, make_project


def test_ingest_and_validate_take_the_synthetic_file_as_their_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_project(tmp_path / "project", None)
    monkeypatch.setenv("SONGREC_ROOT", str(project))
    result = CliRunner().invoke(main, ["synth", "--playlists", "400", "--seed", "1"])
    assert result.exit_code == 0, result.output
    out = project / "data" / "synthetic" / "playlists-400-seed-1.csv.gz"
    sha256 = hashlib.sha256(out.read_bytes()).hexdigest()
    assert f"sha256 {sha256}" in result.output

    source = "data/synthetic/playlists-400-seed-1.csv.gz"
    edit_yaml(project / "config" / "config.yaml", {"ingest.source": source, "ingest.sha256": sha256})
    manager = ConfigurationManager(project)
    ingested = ingest.run(manager)
    validated = validate.run(manager)
    rows = len(pd.read_csv(out))
    assert ingested["rows"] == rows == validated["rows"]
    assert validated["quarantined"] == 0
    assert json.loads(manager.ingest().record.read_text())["source"] == source


def test_a_parquet_file_holds_the_same_rows_and_is_a_source_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_project(tmp_path / "project", None)
    monkeypatch.setenv("SONGREC_ROOT", str(project))
    for name in ("p.csv.gz", "p.parquet"):
        out = str(project / "data" / "synthetic" / name)
        result = CliRunner().invoke(main, ["synth", "--playlists", "60", "--seed", "2", "--out", out])
        assert result.exit_code == 0, result.output
    as_csv = pd.read_csv(project / "data/synthetic/p.csv.gz")
    as_parquet = pd.read_parquet(project / "data/synthetic/p.parquet")
    pd.testing.assert_frame_equal(as_parquet, as_csv, check_dtype=False)

    edit_yaml(
        project / "config" / "config.yaml",
        {"ingest.source": "data/synthetic/p.parquet", "ingest.sha256": None},
    )
    manager = ConfigurationManager(project)
    assert ingest.run(manager)["rows"] == len(as_csv)
    assert validate.run(manager)["quarantined"] == 0
