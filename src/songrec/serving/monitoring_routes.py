"""The monitoring routes of the API: POST /labels, and the /monitoring page with its charts.

/labels takes the true rows of new tracks (the source format, held to config/schema.yaml by
the same checks as the pipeline's validate stage) and stores them; monitoring scores the
served genre classifier on them and exports them for retraining.
"""

from __future__ import annotations

import html
import logging
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from songrec.config.stage_configs import ServeConfig
from songrec.contract.validation import validate_tracks
from songrec.monitoring import charts
from songrec.serving.errors import ApiError, error_responses
from songrec.store.engine import connect
from songrec.store.queries import read_table
from songrec.store.schema import alerts, drift_runs, labels, online_quality, promotions, retraining_decisions

log = logging.getLogger(__name__)


class LabelsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tracks: list[dict[str, Any]] = Field(
        min_length=1, description="Rows of the source data (config/schema.yaml), true genre included."
    )


class LabelsResponse(BaseModel):
    accepted: int


def monitoring_router(config: ServeConfig) -> APIRouter:
    router = APIRouter()
    state: dict[str, Any] = {}

    def engine() -> Any:
        if "engine" not in state:
            state["engine"] = connect(config.event_store_url)
        return state["engine"]

    @router.post(
        "/labels",
        response_model=LabelsResponse,
        tags=["monitoring"],
        summary="Store the true rows (genre included) of new tracks",
        responses=error_responses(
            400,
            413,
            422,
            503,
            s422="A row breaks the data contract.",
            s503="The monitoring store is unavailable.",
        ),
    )
    def post_labels(body: LabelsRequest) -> dict[str, Any]:
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
                if not (value is None or isinstance(value, str | int | float)) or isinstance(value, bool):
                    raise ApiError(
                        422,
                        f"must be a text or a number, got {type(value).__name__}",
                        loc=["body", "tracks", index, name],
                        type_="type_error",
                    )
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
        try:
            with engine().begin() as connection:
                connection.execute(labels.insert(), records)
        except Exception as exc:
            log.warning("labels not stored: %s", exc)
            raise ApiError(503, f"the monitoring store is unavailable: {type(exc).__name__}") from exc
        return {"accepted": len(records)}

    @router.get("/monitoring", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        try:
            tables = _tables(engine())
        except Exception as exc:
            return HTMLResponse(
                _page_html(None, f"the monitoring store is unavailable: {exc}"), status_code=503
            )
        return HTMLResponse(_page_html(tables, None))

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


def _tables(engine: Any) -> dict[str, pd.DataFrame]:
    return {
        "drift_runs": read_table(engine, drift_runs),
        "online_quality": read_table(engine, online_quality, order_by="day"),
        "promotions": read_table(engine, promotions),
        "alerts": read_table(engine, alerts),
        "decisions": read_table(engine, retraining_decisions),
    }


def _table_html(frame: pd.DataFrame, columns: list[str], empty: str, limit: int = 10) -> str:
    if frame.empty:
        return f"<p class='empty'>{html.escape(empty)}</p>"
    rows = frame.tail(limit).iloc[::-1]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(row[c]))}</td>" for c in columns) + "</tr>"
        for _, row in rows.iterrows()
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, pd.Timestamp | datetime):
        return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")
    return str(value)


def _page_html(tables: dict[str, pd.DataFrame] | None, error: str | None) -> str:
    sections = f"<p class='error'>{html.escape(error)}</p>" if error else ""
    if tables is not None:
        latest = tables["drift_runs"].tail(1)
        verdict = "no drift run yet"
        if not latest.empty:
            row = latest.iloc[0]
            share = row["drift_share"]
            shown = "n/a" if share is None or pd.isna(share) else f"{share:.0%}"
            state = "DRIFT" if bool(row["dataset_drift"]) else "no drift"
            verdict = f"last run {_cell(row['time'])} UTC: {state} ({shown} of features drifted)"
        sections += f"""
<section><h2>Data drift</h2><p id="drift-verdict">{html.escape(verdict)}</p>
<img id="chart-drift_share" src="/monitoring/charts/drift_share.png" alt="drift share over time">
<img id="chart-feature_drift" src="/monitoring/charts/feature_drift.png" alt="per-feature drift"></section>
<section><h2>Online quality by model version</h2>
<img id="chart-quality" src="/monitoring/charts/quality.png" alt="hit rate and similarity by model version">
{
            _table_html(
                tables["online_quality"],
                ["day", "model_version", "requests", "hit_rate", "mean_similarity", "genre_accuracy"],
                "no traffic yet",
            )
        }</section>
<section><h2>Promotions and rollbacks</h2>
{_table_html(tables["promotions"], ["time", "action", "from_version", "to_version", "reason"], "none yet")}
</section>
<section><h2>Retraining decisions</h2>
{_table_html(tables["decisions"], ["time", "triggered", "reason"], "none yet")}</section>
<section><h2>Alerts</h2>
{_table_html(tables["alerts"], ["time", "kind", "message", "delivery"], "no alerts")}</section>"""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>songrec monitoring</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }}
img {{ max-width: 100%; display: block; margin: 0.5rem 0; }}
table {{ border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0 1.5rem; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: left; }}
.empty {{ color: #888; }} .error {{ color: #b00; }}
</style></head>
<body><h1>songrec monitoring</h1><p><a href="/">recommendations</a> · <a href="/docs">API</a></p>
{sections}</body></html>"""
