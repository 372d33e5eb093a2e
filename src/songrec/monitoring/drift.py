"""Data drift of recent traffic against the training reference, with Evidently (0.7 API).

Evidently picks a statistical test per feature (Wasserstein distance for numeric features with
enough rows, Jensen-Shannon for low-cardinality ones such as `mode`, K-S for small samples)
and writes a self-contained HTML report that needs no network to open. Each feature's drift
verdict is read from Evidently's own test status, because the direction of a test's threshold
differs between p-values and distances.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

VALUE_DRIFT = "evidently:metric_v2:ValueDrift"
DRIFTED_COLUMNS = "evidently:metric_v2:DriftedColumnsCount"


@dataclass(frozen=True)
class DriftResult:
    features: dict[str, dict[str, Any]]  # feature -> score, method, threshold, drifted
    drift_share: float  # share of features that drifted
    dataset_drift: bool
    threshold: float

    @property
    def drifted(self) -> list[str]:
        return [name for name, values in self.features.items() if values.get("drifted")]


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: list[str],
    drift_share: float,
    report: Path | None,
) -> DriftResult:
    """Compare `current` with `reference` on `features`; write the HTML report to `report`."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=features)
    snapshot = Report([DataDriftPreset(columns=features, drift_share=drift_share)], include_tests=True).run(
        current_data=Dataset.from_pandas(current[features], data_definition=definition),
        reference_data=Dataset.from_pandas(reference[features], data_definition=definition),
    )
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        snapshot.save_html(str(report))
    return summarize(snapshot.dict(), drift_share)


def summarize(result: dict[str, Any], drift_share: float) -> DriftResult:
    """Per-feature scores and verdicts, and the dataset verdict, from a snapshot's dict()."""
    features: dict[str, dict[str, Any]] = {}
    share = 0.0
    for metric in result["metrics"]:
        config = metric["config"]
        if config["type"] == DRIFTED_COLUMNS:
            share = float(metric["value"]["share"])
        elif config["type"] == VALUE_DRIFT:
            features[config["column"]] = {
                "score": float(metric["value"]),
                "method": str(config["method"]),
                "threshold": float(config["threshold"]),
                "drifted": False,
            }
    dataset_drift = False
    for test in result["tests"]:
        params = test["metric_config"]["params"]
        failed = str(getattr(test["status"], "value", test["status"])) == "FAIL"
        if params["type"] == VALUE_DRIFT and params["column"] in features:
            features[params["column"]]["drifted"] = failed
        elif params["type"] == DRIFTED_COLUMNS:
            dataset_drift = failed
    return DriftResult(
        features=features, drift_share=share, dataset_drift=dataset_drift, threshold=drift_share
    )
