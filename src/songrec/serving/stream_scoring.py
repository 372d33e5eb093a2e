"""One micro-batch of stream entries: checked as the API checks requests, scored with one model.

An entry has two fields: `task` (recommend, genre or popularity) and `body`, the JSON body the
API takes on that route. `parse` checks it with the API's own request models (built from the
data contract, schemas.build_request_models), so an entry the API would refuse is refused here
with the API's message, which names the field. `score` answers a whole batch from the model it
is given. Genre and popularity entries are answered together, per task: their catalog tracks
from the model's catalog predictions (catalog_predictions.py), and the feature rows of all of
them in one vectorised call of the model (concatenated, then split back). Recommendations are
answered one by one through the CatalogView, as the API does. The answers are the API's
response bodies, with the entry's id as `request_id`.

No Redis here: stream.py reads the entries and writes what `score` returns.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from songrec.models.catalog_view import FeatureRow, Resolved
from songrec.serving.answers import request_rows, require_known
from songrec.serving.catalog_predictions import catalog_predictions
from songrec.serving.errors import MAX_LISTED_ERRORS, ApiError, describe
from songrec.serving.model_store import ServedModel
from songrec.serving.schemas import PlaylistRequest, RecommendRequest, RequestModels

log = logging.getLogger(__name__)

TASKS = ("recommend", "genre", "popularity")
UNKNOWN_TASK = "unknown"  # the metrics' label of an entry without a valid task


@dataclass(frozen=True)
class Job:
    """A valid entry: its id, its task and its body, checked."""

    input_id: str
    task: str
    body: PlaylistRequest
    fields: dict[bytes, bytes]  # the entry as read (a dead letter keeps it)


@dataclass(frozen=True)
class Output:
    """What one entry produces: a result, or a dead letter (then `reason` says why)."""

    input_id: str
    task: str  # one of TASKS, or UNKNOWN_TASK
    fields: dict[str, str | bytes]  # the output entry's fields
    reason: str | None = None  # set for a dead letter
    kind: str | None = None  # the dead letter's kind of reason (a metrics label)

    @property
    def dead(self) -> bool:
        return self.reason is not None


def dead_letter(
    input_id: str, fields: dict[bytes, bytes] | None, reason: str, kind: str, task: str = UNKNOWN_TASK
) -> Output:
    """The dead letter of an entry: its id, the reason, and its own task and body as given."""
    given = fields or {}
    return Output(
        input_id=input_id,
        task=task,
        fields={
            "input_id": input_id,
            "reason": reason,
            "task": given.get(b"task", b""),
            "body": given.get(b"body", b""),
        },
        reason=reason,
        kind=kind,
    )


def parse(input_id: str, fields: dict[bytes, bytes] | None, models: RequestModels) -> Job | Output:
    """The entry as a Job, or its dead letter when the API would refuse it."""
    if not fields:  # read from the pending list after the entry was deleted from the stream
        return dead_letter(
            input_id, None, "the entry was deleted from the stream before it was scored", "deleted"
        )
    raw_task = fields.get(b"task")
    if raw_task is None:
        return dead_letter(input_id, fields, f"task: missing (one of {', '.join(TASKS)})", "task")
    task = raw_task.decode("utf-8", errors="replace")
    if task not in TASKS:
        shown = task if len(task) <= 40 else task[:40] + "..."
        return dead_letter(
            input_id, fields, f"task: unknown task {shown!r} (one of {', '.join(TASKS)})", "task"
        )
    raw_body = fields.get(b"body")
    if raw_body is None:
        return dead_letter(
            input_id, fields, "body: missing (the JSON body of the API's route for the task)", "body", task
        )
    try:
        document = json.loads(raw_body.decode("utf-8"))
    except UnicodeDecodeError:
        return dead_letter(
            input_id, fields, "body: cannot be read as JSON (JSON text must be UTF-8)", "body", task
        )
    except json.JSONDecodeError as exc:
        return dead_letter(
            input_id, fields, f"body: malformed JSON at character {exc.pos} ({exc.msg})", "body", task
        )
    model = models.recommend if task == "recommend" else models.batch
    try:
        body = model.model_validate(document)
    except ValidationError as exc:
        return dead_letter(input_id, fields, _validation_message(exc), "invalid", task)
    return Job(input_id=input_id, task=task, body=body, fields=fields)


def _validation_message(exc: ValidationError) -> str:
    """The API's 422 message (errors.validation_error): each error names its field."""
    errors = exc.errors()
    sentences = [describe(dict(error)) for error in errors[:MAX_LISTED_ERRORS]]
    if len(errors) > MAX_LISTED_ERRORS:
        sentences.append(f"and {len(errors) - MAX_LISTED_ERRORS} more")
    return "; ".join(sentences)


# --------------------------------------------------------------------------- scoring


def score(jobs: Sequence[Job], served: ServedModel) -> dict[str, Output]:
    """Each job's output (by input id), every one answered by `served`."""
    outputs: dict[str, Output] = {}
    for task in ("genre", "popularity"):
        group = [job for job in jobs if job.task == task]
        if group:
            outputs.update(_predict_isolating(group, served, task))
    for job in jobs:
        if job.task == "recommend":
            outputs[job.input_id] = _recommend_safely(job, served)
    return outputs


def _result(job: Job, served: ServedModel, answer: dict[str, Any]) -> Output:
    return Output(
        input_id=job.input_id,
        task=job.task,
        fields={
            "input_id": job.input_id,
            "task": job.task,
            "model_version": served.version,
            "result": json.dumps(answer, ensure_ascii=False, separators=(",", ":")),
        },
    )


def _job_dead_letter(job: Job, reason: str, kind: str) -> Output:
    return dead_letter(job.input_id, job.fields, reason, kind, job.task)


def _recommend_safely(job: Job, served: ServedModel) -> Output:
    """The job's result; a refusal (no known track) or a failure is its dead letter."""
    try:
        return _recommend(job, served)
    except ApiError as exc:
        return _job_dead_letter(job, exc.body()["message"], exc.type)
    except Exception as exc:  # one entry must not stop the stream: it is set aside, with why
        log.exception("entry %s (%s) could not be scored", job.input_id, job.task)
        return _job_dead_letter(job, f"scoring failed: {type(exc).__name__}: {exc}", "scoring_error")


def _recommend(job: Job, served: ServedModel) -> Output:
    body = job.body
    assert isinstance(body, RecommendRequest)
    view = served.view
    resolved = view.resolve(body.track_ids)
    rows = request_rows(body, served)
    require_known(resolved, rows)
    answer = view.recommend(resolved, rows, body.k)
    return _result(
        job,
        served,
        {
            "request_id": job.input_id,
            "model_version": served.version,
            "k": body.k,
            "recommendations": answer.tracks,
            "unknown_track_ids": answer.unknown_track_ids,
        },
    )


@dataclass(frozen=True)
class _Prepared:
    job: Job
    resolved: Resolved
    rows: list[FeatureRow]


def _predict_isolating(jobs: Sequence[Job], served: ServedModel, task: str) -> dict[str, Output]:
    """All jobs in one predict call; if that call fails, each alone, so only the faulty ones fail."""
    outputs: dict[str, Output] = {}
    prepared: list[_Prepared] = []
    for job in jobs:
        resolved = served.view.resolve(job.body.track_ids)
        rows = request_rows(job.body, served)
        try:
            require_known(resolved, rows)
        except ApiError as exc:
            outputs[job.input_id] = _job_dead_letter(job, exc.body()["message"], exc.type)
            continue
        prepared.append(_Prepared(job, resolved, rows))
    if not prepared:
        return outputs
    try:
        answers = _predict(prepared, served, task)
    except Exception as exc:  # one entry must not stop the stream: it is set aside, with why
        if len(prepared) > 1:
            log.warning("a batch of %d %s entries failed: scoring them one by one", len(prepared), task)
            for item in prepared:
                outputs.update(_predict_isolating([item.job], served, task))
            return outputs
        (item,) = prepared
        log.exception("entry %s (%s) could not be scored", item.job.input_id, task)
        reason = f"scoring failed: {type(exc).__name__}: {exc}"
        outputs[item.job.input_id] = _job_dead_letter(item.job, reason, "scoring_error")
        return outputs
    for item, answer in zip(prepared, answers, strict=True):
        outputs[item.job.input_id] = _result(item.job, served, answer)
    return outputs


def _predict(prepared: Sequence[_Prepared], served: ServedModel, task: str) -> list[dict[str, Any]]:
    """The API's answers (routes.answer_genre, answer_popularity) of every prepared job: catalog
    tracks from the model's catalog predictions (catalog_predictions.py), and every feature row
    of the batch in one call of the model."""
    view, bundle = served.view, served.bundle
    catalog = catalog_predictions(bundle)
    positions = np.concatenate([item.resolved.positions for item in prepared])
    rows = [row for item in prepared for row in item.rows]
    features = None
    if rows:  # as the API's model input (bundle.tracks_for): numbers and artist, no album
        features = pd.DataFrame([row.values for row in rows], columns=list(view.numeric_features))
        features["track_artist"] = [row.artist for row in rows]
    values: list[dict[str, Any]]
    if task == "genre":
        labels = catalog.genre[positions].tolist()
        probabilities = catalog.probabilities[positions]
        if features is not None:
            predicted = bundle.predict_genre(features)
            labels += predicted["genre"].tolist()
            columns = [f"p_{genre}" for genre in bundle.genres]
            probabilities = np.vstack([probabilities, predicted[columns].to_numpy(dtype=np.float64)])
        values = [
            {"genre": str(label), "probabilities": dict(zip(bundle.genres, p, strict=True))}
            for label, p in zip(labels, probabilities.round(6).tolist(), strict=True)
        ]
    else:
        popularity = catalog.popularity[positions]
        if features is not None:
            popularity = np.concatenate([popularity, bundle.predict_popularity(features)])
        values = [{"popularity": round(float(value), 3)} for value in popularity.tolist()]
    answers = []
    known_at, row_at = 0, len(positions)
    for item in prepared:
        n_known, n_rows = len(item.resolved.positions), len(item.rows)
        origins = [
            {"input": "track_ids", "index": index, "track_id": view.track_ids[position]}
            for index, position in zip(item.resolved.indexes, item.resolved.positions.tolist(), strict=True)
        ] + [{"input": "tracks", "index": index, "track_id": None} for index in range(n_rows)]
        mine = values[known_at : known_at + n_known] + values[row_at : row_at + n_rows]
        known_at, row_at = known_at + n_known, row_at + n_rows
        predictions = [{**origin, **value} for origin, value in zip(origins, mine, strict=True)]
        answer: dict[str, Any] = {"request_id": item.job.input_id, "model_version": served.version}
        if task == "genre":
            answer["genres"] = list(bundle.genres)
        answer["predictions"] = predictions
        answer["unknown_track_ids"] = item.resolved.unknown
        answers.append(answer)
    return answers
