"""validate: hold the raw data to its contract, config/schema.yaml, before anything learns from it.

Reads data/raw/tracks.parquet, checks it with a pandera schema built from config/schema.yaml
(required columns, dtypes, nullability, ranges, allowed values, id formats, the unique key) and
writes reports/validation.json with every violation. Rows that break a row-level rule are
quarantined while they stay under `validate.max_quarantined_share`; a structural problem or
more bad rows than that fails the stage with a readable summary, so neither `dvc repro` nor
Airflow reach training. On success it writes data/validated/tracks.parquet.
"""

from __future__ import annotations

import logging
from typing import Any

from songrec.config.manager import ConfigurationManager
from songrec.contract.validation import summary_text, validate_tracks
from songrec.core.errors import ValidationFailed
from songrec.core.io import read_parquet, write_json, write_parquet

log = logging.getLogger(__name__)


def run(manager: ConfigurationManager) -> dict[str, Any]:
    config = manager.validate()
    raw = read_parquet(config.raw_tracks)
    result = validate_tracks(raw, config.schema, config.max_quarantined_share)
    write_json(result.report, config.report)
    summary = summary_text(result.report, manager.relative(config.report))
    if not result.passed:
        raise ValidationFailed(summary)
    log.info("%s", summary)
    write_parquet(result.valid_rows, config.validated_tracks)
    return {"rows": len(result.valid_rows), "quarantined": result.report["quarantined_rows"]}
