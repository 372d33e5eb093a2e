"""The promotion gate when the champion cannot be measured: it still decides, and says why."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow

# A pickle of a class the code no longer has: what a champion trained before a class was
# renamed or removed holds (loading it raises AttributeError, as it did for a real champion).
GONE_CLASS_PICKLE = b"\x80\x04csongrec.models.recommender\nRerankerThatIsGone\n)\x81."


def test_an_unloadable_champion_is_compared_by_the_metrics_its_run_logged(
    trained_project: Path, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    shutil.copytree(trained_project, project, ignore=shutil.ignore_patterns("mlruns"))
    run_cli("songrec", "run", "evaluate", cwd=project)
    first = json.loads((project / "reports/promotion.json").read_text())
    assert first["challenger_version"] == "1" and first["promoted"]
    bundles = list((project / "mlruns").rglob("bundle.pkl"))
    assert bundles, "version 1's bundle artifact is in the local store"
    for bundle in bundles:
        bundle.write_bytes(GONE_CLASS_PICKLE)

    result = run_cli("songrec", "run", "evaluate", cwd=project)
    decision = json.loads((project / "reports/promotion.json").read_text())
    assert decision["challenger_version"] == "2" and decision["champion_version_before"] == "1"
    assert "champion version 1 could not be measured on this data (AttributeError" in decision["reason"]
    assert "compared with the metrics its own run logged" in decision["reason"]
    # Version 1's own metrics, as its run logged them: the same data, so the same figures.
    for name in ("recall_at_100", "genre_macro_f1", "popularity_r2"):
        assert decision["champion_metrics"][name] == pytest.approx(first["challenger_metrics"][name])
    assert "cannot be measured on this data" in result.stderr
    # A pipeline run registers; the release moves champion, judged the same way.
    assert not decision["promoted"] and "the gate would promote it" in decision["reason"]
    released = run_cli("songrec", "promote", cwd=project)
    assert "songrec v2 released" in released.stdout
    release = json.loads((project / "reports/release.json").read_text())
    assert release["promoted"] and release["champion_version_after"] == "2"
    assert "compared with the metrics its own run logged" in release["reason"]


def test_a_champion_with_nothing_to_compare_keeps_serving(trained_project: Path, tmp_path: Path) -> None:
    """A champion that can neither be loaded nor read from its run (no run, an artifact that is
    gone) is not replaced blindly: the challenger stays a challenger."""
    from mlflow import MlflowClient

    project = tmp_path / "project"
    shutil.copytree(trained_project, project, ignore=shutil.ignore_patterns("mlruns"))
    run_cli("songrec", "run", "evaluate", cwd=project)
    uri = f"sqlite:///{project / 'mlruns' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    gone = client.create_model_version("songrec", source=str(tmp_path / "no-such-model"))
    client.set_registered_model_alias("songrec", "champion", gone.version)

    run_cli("songrec", "run", "evaluate", cwd=project)
    decision = json.loads((project / "reports/promotion.json").read_text())
    assert decision["champion_version_before"] == str(gone.version) == "2"
    assert not decision["promoted"] and decision["champion_version_after"] == "2"
    assert "not compared, so not promoted: champion version 2 could not be" in decision["reason"]
    refused = run_cli("songrec", "promote", cwd=project, check=False)
    assert refused.returncode == 1 and "not released" in refused.stdout
    assert str(client.get_model_version_by_alias("songrec", "champion").version) == "2"
    assert str(client.get_model_version_by_alias("songrec", "challenger").version) == "3"
