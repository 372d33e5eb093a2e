"""Retraining decisions: new rows only, the growth threshold, idempotent additions."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from songrec.config.manager import ConfigurationManager
from songrec.orchestration.retraining import accept, decide, plan_retraining, unseen_rows
from songrec.stages import ingest
from tests.conftest import SOURCE, make_project


@pytest.fixture
def split_data(sample_frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The sample as the source, and ten other real playlists as new data."""
    everything = pd.read_csv(SOURCE)
    others = everything[~everything["playlist_id"].isin(sample_frame["playlist_id"])]
    chosen = sorted(others["playlist_id"].unique())[:10]
    return sample_frame, others[others["playlist_id"].isin(chosen)].reset_index(drop=True)


@pytest.fixture
def project(tmp_path: Path, split_data: tuple[pd.DataFrame, pd.DataFrame]) -> Path:
    return make_project(tmp_path / "project", split_data[0])


def drop_incoming(project: Path, frame: pd.DataFrame, name: str) -> Path:
    folder = project / "data" / "incoming"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if name.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False, compression="gzip" if name.endswith(".gz") else None)
    return path


def test_decide_follows_the_threshold() -> None:
    assert decide(0, 1000, False, 0.01, False, 0) == (False, "no new files")
    assert decide(5, 1000, False, 0.01, False, 1)[0] is False
    assert decide(20, 1000, False, 0.01, False, 1)[0] is True
    assert decide(5, 1000, False, 0.01, True, 1)[0] is True
    assert decide(0, 1000, True, 0.01, False, 0)[0] is True


def test_unseen_rows_drops_known_and_repeated_keys(split_data) -> None:  # type: ignore[no-untyped-def]
    known, new = split_data
    key = ("track_id", "playlist_id", "playlist_subgenre")
    incoming = pd.concat([new, new.head(5), known.head(7)], ignore_index=True)
    assert len(unseen_rows(known, incoming, key)) == len(new.drop_duplicates(list(key)))


def test_no_files_means_nothing_to_do(project: Path) -> None:
    plan = plan_retraining(ConfigurationManager(project).retrain(), "2026-11-01", 0.01)
    assert (plan.train, plan.reason) == (False, "no new files")


def test_new_playlists_train_and_become_an_idempotent_addition(project: Path, split_data) -> None:  # type: ignore[no-untyped-def]
    _, new = split_data
    drop_incoming(project, new, "drop-1.csv.gz")
    config = ConfigurationManager(project).retrain()
    plan = plan_retraining(config, "2026-11-01T00:00:00+00:00", 0.01)
    assert plan.train
    assert len(plan.new_rows) == len(new)
    accept(plan, config)
    addition = config.additions_dir / "2026-11-01T000000.parquet"
    first = pd.read_parquet(addition)
    # A rerun of the same logical date rebuilds the same addition...
    again = plan_retraining(config, "2026-11-01T00:00:00+00:00", 0.01)
    accept(again, config)
    pd.testing.assert_frame_equal(pd.read_parquet(addition), first)
    # ...and the next day sees nothing new in the same file.
    later = plan_retraining(config, "2026-11-02T00:00:00+00:00", 0.01)
    assert (later.train, later.reason) == (False, "no new files")
    # The pipeline reads the source plus the addition; the source file is untouched.
    record = ingest.run(ConfigurationManager(project))
    assert record["rows"] == len(split_data[0]) + len(new)


def test_new_data_can_land_as_parquet_beside_csv(project: Path, split_data) -> None:  # type: ignore[no-untyped-def]
    _, new = split_data
    half = len(new) // 2
    drop_incoming(project, new.iloc[:half], "first.parquet")
    drop_incoming(project, new.iloc[half:], "second.csv")
    plan = plan_retraining(ConfigurationManager(project).retrain(), "2026-11-01", 0.01)
    assert plan.train
    assert len(plan.new_rows) == len(new)


def test_a_few_new_rows_wait_below_the_threshold(project: Path, split_data) -> None:  # type: ignore[no-untyped-def]
    _, new = split_data
    drop_incoming(project, new.head(3), "small.csv")
    plan = plan_retraining(ConfigurationManager(project).retrain(), "2026-11-01", 0.01)
    assert not plan.train
    assert "not above 1.00%" in plan.reason
    assert plan.summary()["new_rows"] == 3
