"""The monitoring routes of the API: POST /labels, and the /monitoring page with its charts.

/labels takes the true rows of new tracks (the source format, held to config/schema.yaml by
the same checks as the pipeline's validate stage) and stores them; monitoring scores the
served genre classifier on them and exports them for retraining. Because retraining learns
from them, only a holder of SONGREC_LABELER_TOKEN may send them, each accepted batch is stored
with where it came from (label_batches), and one address may send label_rows_per_hour rows.
The page is the Jinja2 template web/templates/monitoring.html; the values it shows are
formatted here (`_view`).
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field

from songrec.config.stage_configs import ServeConfig
from songrec.contract.validation import validate_tracks
from songrec.monitoring import charts
from songrec.serving.deps import require_labeler
from songrec.serving.errors import ApiError, error_responses
from songrec.serving.routes import WEB
from songrec.store.engine import connect
from songrec.store.label_review import conflicts, held_labels, store_labels
from songrec.store.queries import read_table
from songrec.store.schema import (
    alerts,
    drift_runs,
    label_batches,
    online_quality,
    promotions,
    retraining_decisions,
)

log = logging.getLogger(__name__)


class LabelsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tracks: list[dict[str, Any]] = Field(
        min_length=1, description="Rows of the source data (config/schema.yaml), true genre included."
    )


class LabelsResponse(BaseModel):
    accepted: int
    held: int = Field(
        description="Of those, rows held for review: they contradict the catalog or an earlier label "
        "(`songrec labels review|accept|reject`); until accepted, neither exported nor scored."
    )
    batch_id: str = Field(description="The id under which this batch and its sender are stored.")


INT64 = 2**63  # numbers the store and pandas hold exactly
DATE_FORMATS = {4: "%Y", 7: "%Y-%m", 10: "%Y-%m-%d"}  # the release date's three precisions


def _check_value(value: Any, loc: list[Any], is_date: bool) -> None:
    """A 422 naming the field for what pandas or the store cannot hold, before either sees it."""
    if not (value is None or isinstance(value, str | int | float)) or isinstance(value, bool):
        raise ApiError(
            422, f"must be a text or a number, got {type(value).__name__}", loc=loc, type_="type_error"
        )
    if isinstance(value, int) and not -INT64 <= value < INT64:
        raise ApiError(422, "the number is too large", loc=loc, type_="number_too_large")
    if isinstance(value, float) and not math.isfinite(value):
        raise ApiError(422, "must be a finite number", loc=loc, type_="finite_number")
    if isinstance(value, str) and value.strip().lower() in (
        "inf",
        "+inf",
        "-inf",
        "infinity",
        "-infinity",
        "nan",
    ):
        raise ApiError(422, "must be a finite number or a text", loc=loc, type_="finite_number")
    if is_date and isinstance(value, str):
        layout = DATE_FORMATS.get(len(value))
        try:
            if layout is None:
                raise ValueError(value)
            datetime.strptime(value, layout)
        except ValueError:
            raise ApiError(
                422, "must be a real date: YYYY, YYYY-MM or YYYY-MM-DD", loc=loc, type_="date"
            ) from None


def _check_rate(engine: Any, address: str, rows: int, per_hour: int) -> None:
    """429 when this address would pass `per_hour` label rows within the last hour."""
    from sqlalchemy import func, select

    since = datetime.now(UTC) - timedelta(hours=1)
    query = select(func.coalesce(func.sum(label_batches.c.rows), 0)).where(
        label_batches.c.source_address == address, label_batches.c.time >= since
    )
    try:
        with engine.connect() as connection:
            sent = int(connection.execute(query).scalar_one())
    except Exception as exc:
        raise ApiError(503, f"the monitoring store is unavailable: {type(exc).__name__}") from exc
    if sent + rows > per_hour:
        raise ApiError(
            429,
            f"this address sent {sent} label rows in the last hour; at most {per_hour}"
            " (serve.label_rows_per_hour)",
            loc=["body", "tracks"],
            type_="rate_limited",
            headers={"Retry-After": "3600"},
        )


def monitoring_router(config: ServeConfig) -> APIRouter:
    router = APIRouter()
    templates = Jinja2Templates(directory=WEB / "templates")
    state: dict[str, Any] = {}

    def engine() -> Any:
        if "engine" not in state:
            state["engine"] = connect(config.event_store_url)
        return state["engine"]

    @router.post(
        "/labels",
        response_model=LabelsResponse,
        tags=["monitoring"],
        summary="Store the true rows (genre included) of new tracks (bearer SONGREC_LABELER_TOKEN)",
        dependencies=[Depends(require_labeler)],
        responses=error_responses(
            400,
            401,
            413,
            422,
            429,
            503,
            s422="A row breaks the data contract.",
            s429="This address sent serve.label_rows_per_hour rows in the last hour.",
            s503="The monitoring store is unavailable.",
        ),
    )
    def post_labels(body: LabelsRequest, request: Request) -> dict[str, Any]:
        if len(body.tracks) > config.max_batch_tracks:
            raise ApiError(
                422,
                f"at most {config.max_batch_tracks} tracks per request, got {len(body.tracks)}",
                loc=["body", "tracks"],
                type_="too_long",
            )
        for index, row in enumerate(body.tracks):
            for name, value in row.items():
                if name not in config.schema.column_names:
                    raise ApiError(
                        422,
                        "unknown field (not a column of config/schema.yaml)",
                        loc=["body", "tracks", index, name],
                        type_="extra_forbidden",
                    )
                _check_value(value, ["body", "tracks", index, name], name == "track_album_release_date")
        address = request.client.host if request.client else "unknown"
        _check_rate(engine(), address, len(body.tracks), config.label_rows_per_hour)
        frame = pd.DataFrame(body.tracks)
        result = validate_tracks(frame, config.schema, max_quarantined_share=0.0)
        if not result.passed:
            first = result.report["violations"][0] if result.report["violations"] else {}
            rows = [line - 2 for line in first.get("source_lines", [])]
            raise ApiError(
                422,
                f"{first.get('column')}: {first.get('rule')} (e.g. {first.get('examples', [])[:3]})",
                loc=["body", "tracks", *(rows[:1] or []), str(first.get("column"))],
                type_="data_contract",
                violations=result.report["violations"],
            )
        now = datetime.now(UTC)
        records = [
            {
                "time": now,
                "track_id": row["track_id"],
                "genre": row[config.schema.genre_target],
                "row": {k: (None if pd.isna(v) else v) for k, v in row.items()},
            }
            for row in result.valid_rows.astype(object).to_dict("records")
        ]
        batch_id = uuid.uuid4()
        batch = {
            "batch_id": batch_id,
            "time": now,
            "source_address": address,
            "sender": "labeler",
            "rows": len(records),
            "track_ids": [record["track_id"] for record in records],
        }
        genre_of = _catalog_genres(request, state)
        try:
            with engine().begin() as connection:
                held = store_labels(connection, batch, records, conflicts(connection, records, genre_of))
        except Exception as exc:
            log.warning("labels not stored: %s", exc)
            raise ApiError(503, f"the monitoring store is unavailable: {type(exc).__name__}") from exc
        log.info(
            "labels: batch %s, %d rows from %s, %d held for review", batch_id, len(records), address, held
        )
        return {"accepted": len(records), "held": held, "batch_id": str(batch_id)}

    @router.get("/monitoring", response_class=HTMLResponse, include_in_schema=False)
    def page(request: Request) -> Response:
        try:
            tables = _tables(engine())
        except Exception as exc:
            return templates.TemplateResponse(
                request,
                "monitoring.html",
                _view(None, f"the monitoring store is unavailable: {exc}"),
                status_code=503,
            )
        return templates.TemplateResponse(request, "monitoring.html", _view(tables, None))

    @router.get("/monitoring/charts/{name}.png", include_in_schema=False)
    def chart(name: str) -> Response:
        if name not in charts.CHARTS:
            raise ApiError(
                404, f"no chart {name!r}; charts: {', '.join(charts.CHARTS)}", loc=["path", "name"]
            )
        return Response(
            charts.render(name, _tables(engine())),
            media_type="image/png",
            headers={"Cache-Control": "no-store"},
        )

    return router


def _catalog_genres(request: Request, state: dict[str, Any]) -> Callable[[str], str | None]:
    """The serving catalog's genre of a track id (None: not in the catalog), indexed once per model."""
    current = request.app.state.services.store.current
    if current is None:
        return lambda track_id: None
    if state.get("genres_of") is not current.bundle:
        catalog = current.bundle.catalog
        state["genres"] = dict(zip(catalog["track_id"], catalog["genre"], strict=True))
        state["genres_of"] = current.bundle
    genres: dict[str, str] = state["genres"]
    return genres.get


def _tables(engine: Any) -> dict[str, pd.DataFrame]:
    return {
        "drift_runs": read_table(engine, drift_runs),
        "online_quality": read_table(engine, online_quality, order_by="day"),
        "promotions": read_table(engine, promotions),
        "alerts": read_table(engine, alerts),
        "decisions": read_table(engine, retraining_decisions),
        "held_labels": held_labels(engine),
    }


@dataclass(frozen=True)
class _Table:
    """A table of the page, its cells formatted: no rows shows the `empty` sentence instead."""

    columns: list[str]
    rows: list[list[str]]
    empty: str


def _table(frame: pd.DataFrame, columns: list[str], empty: str, limit: int = 10) -> _Table:
    """The last `limit` rows of `frame`, newest first."""
    rows = frame.tail(limit).iloc[::-1]
    return _Table(columns, [[_cell(row[c]) for c in columns] for _, row in rows.iterrows()], empty)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, pd.Timestamp | datetime):
        return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")
    return str(value)


def _verdict(drift_runs: pd.DataFrame) -> str:
    latest = drift_runs.tail(1)
    if latest.empty:
        return "no drift run yet"
    row = latest.iloc[0]
    share = row["drift_share"]
    shown = "n/a" if share is None or pd.isna(share) else f"{share:.0%}"
    state = "DRIFT" if bool(row["dataset_drift"]) else "no drift"
    return f"last run {_cell(row['time'])} UTC: {state} ({shown} of features drifted)"


def _view(tables: dict[str, pd.DataFrame] | None, error: str | None) -> dict[str, Any]:
    """The context of monitoring.html: the error, or the drift verdict and the tables."""
    if tables is None:
        return {"error": error, "verdict": None, "tables": None}
    return {
        "error": error,
        "verdict": _verdict(tables["drift_runs"]),
        "tables": {
            "online_quality": _table(
                tables["online_quality"],
                ["day", "model_version", "requests", "hit_rate", "mean_similarity", "genre_accuracy"],
                "no traffic yet",
            ),
            "promotions": _table(
                tables["promotions"], ["time", "action", "from_version", "to_version", "reason"], "none yet"
            ),
            "decisions": _table(tables["decisions"], ["time", "triggered", "reason"], "none yet"),
            "alerts": _table(tables["alerts"], ["time", "kind", "message", "delivery"], "no alerts"),
            "held_labels": _table(
                tables["held_labels"], ["id", "time", "track_id", "genre", "reason"], "none held"
            ),
        },
        "held": len(tables["held_labels"]),
    }
