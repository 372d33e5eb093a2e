"""One end-to-end run on the whole shipped data set, in-process, with the quality bars as tests.

The reference baseline is fitted with fewer trees here (its full fit takes minutes and is
measured by `make run` and bench/pipeline.py); everything else runs as configured.
"""

from __future__ import annotations

import json

import pytest

from songrec.config.manager import ConfigurationManager
from songrec.orchestration.registry import STAGES
from tests.conftest import make_project

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    folder = make_project(tmp_path_factory.mktemp("real") / "project", tracks=None)
    manager = ConfigurationManager(folder)
    for stage in STAGES:
        stage.run(manager)
    metrics = manager.evaluate().metric_files
    return {
        **{name: json.loads(path.read_text()) for name, path in metrics.items()},
        "promotion": json.loads(manager.evaluate().promotion_report.read_text()),
        "validation": json.loads(manager.validate().report.read_text()),
    }


def test_the_shipped_data_passes_with_its_one_broken_row_quarantined(results: dict[str, dict]) -> None:
    validation = results["validation"]
    assert validation["passed"]
    assert validation["rows"] == 32833
    assert validation["quarantined_rows"] == 1  # the 4-second track with tempo 0


def test_genre_macro_f1_is_at_least_0_60(results: dict[str, dict]) -> None:
    assert results["genre"]["macro_f1"] >= 0.60


def test_popularity_r2_is_at_least_0_25(results: dict[str, dict]) -> None:
    assert results["popularity"]["r2"] >= 0.25


def test_recommender_beats_every_baseline_on_the_same_hidden_tracks(results: dict[str, dict]) -> None:
    recommender = results["recommender"]
    ours = recommender["songrec"]["recall_at_100"]
    assert ours >= 0.30
    for baseline in ("reference", "most_popular", "random"):
        assert ours > 3 * recommender[baseline]["recall_at_100"], baseline


def test_first_run_registers_and_promotes(results: dict[str, dict]) -> None:
    promotion = results["promotion"]
    assert promotion["promoted"] and promotion["challenger_version"] == "1"
    assert promotion["tracking_uri"].startswith("sqlite:///")
