"""The batch scoring DAG's work: every known playlist's recommendations from the champion."""

from __future__ import annotations

from typing import Any

from songrec.config.manager import ConfigurationManager
from songrec.scoring.batch import run_batch


def score_known_playlists(manager: ConfigurationManager) -> dict[str, Any]:
    """`songrec batch recommend` on the catalog's playlists with the registry's champion.

    The run id comes from the input and the model version, so a second run for the same
    champion rewrites the same rows, and the API's GET /playlists/{id}/recommendations
    answers from this output as soon as its manifest is written.
    """
    report = run_batch(manager.batch(), "recommend")
    return {
        key: value
        for key, value in report.as_dict().items()
        if key
        in ("output", "model_version", "batch_run_id", "items", "output_rows", "skipped", "table", "seconds")
    }
