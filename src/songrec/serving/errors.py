"""Errors as the API answers them: a status and an ErrorResponse whose message names the field.

Every error body has `message` (one line: the field, the problem, the value given) and `detail`
(FastAPI's list of {loc, msg, type}), so clients written for FastAPI's 422 keep working.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from songrec.serving.schemas import ErrorResponse

log = logging.getLogger(__name__)

MAX_LISTED_ERRORS = 5
BODY_PARSE_ERROR = "There was an error parsing the body"


class ApiError(Exception):
    """An answer other than 2xx, raised by a route or a dependency."""

    def __init__(
        self,
        status_code: int,
        message: str,
        loc: Sequence[str | int] = (),
        type_: str = "error",
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.loc = list(loc)
        self.type = type_
        self.headers = headers
        self.extra = extra

    def body(self) -> dict[str, Any]:
        item = {"loc": self.loc, "msg": self.message, "type": self.type}
        field = field_name(self.loc)
        message = f"{field}: {self.message}" if field else self.message
        return {"message": message, "detail": [item], **self.extra}


def field_name(loc: Sequence[str | int]) -> str:
    """('body', 'tracks', 0, 'energy') -> 'tracks[0].energy'; a query parameter keeps its name."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        where = parts.pop(0)
        if not parts:
            return str(where)
    name = ""
    for part in parts:
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            name += f".{part}" if name else str(part)
    return name


def describe(error: dict[str, Any]) -> str:
    """One validation error as a sentence: the field, pydantic's message, and the value given."""
    loc = error.get("loc", ())
    kind = error.get("type", "")
    if kind == "json_invalid":
        reason = (error.get("ctx") or {}).get("error", "invalid JSON")
        position = loc[1] if len(loc) > 1 else None
        at = f" at character {position}" if isinstance(position, int) else ""
        return f"body: malformed JSON{at} ({reason})"
    field = field_name(loc) or "body"
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if kind == "missing":
        return f"{field}: missing (this field is required)"
    if kind == "extra_forbidden":
        return f"{field}: unknown field (not part of the request contract)"
    shown = _shown(error.get("input"))
    return f"{field}: {message}" + (f" (got {shown})" if shown and kind not in ("empty_playlist",) else "")


def _shown(value: Any) -> str:
    if isinstance(value, bool | int | float) or value is None:
        return repr(value)
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:40] + "...")
    return ""


async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    sentences = [describe(error) for error in errors[:MAX_LISTED_ERRORS]]
    if len(errors) > MAX_LISTED_ERRORS:
        sentences.append(f"and {len(errors) - MAX_LISTED_ERRORS} more")
    detail = [
        {
            "loc": list(error.get("loc", ())),
            "msg": str(error.get("msg", "")),
            "type": str(error.get("type", "")),
        }
        for error in errors
    ]
    return JSONResponse(
        {"message": "; ".join(sentences), "detail": jsonable_encoder(detail)}, status_code=422
    )


async def api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers)


async def http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = str(exc.detail)
    if exc.status_code == 400 and message == BODY_PARSE_ERROR:  # FastAPI's words for undecodable bytes
        message = "body: cannot be read as JSON (JSON text must be UTF-8)"
    body = {"message": message, "detail": [{"loc": [], "msg": message, "type": "http_error"}]}
    return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    request_id = request.scope.get("state", {}).get("request_id")
    log.exception("request %s failed: %s", request_id, exc)
    message = f"internal error (request {request_id}); the server log has the details"
    return JSONResponse(
        {"message": message, "detail": [{"loc": [], "msg": message, "type": "internal_error"}]},
        status_code=500,
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)


def error_responses(*statuses: int, **described_as: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses (`described_as`: e.g. s503="...")."""
    described = {
        400: "The body cannot be read as JSON text.",
        401: "No valid bearer token.",
        404: "Nothing with this id.",
        413: "The request body is larger than serve.max_body_bytes.",
        422: "Bad input: the message names the field and the problem.",
        429: "Too many requests from this address: wait for Retry-After seconds.",
        503: "No model is loaded yet, or none can be loaded.",
    }
    return {
        status: {"model": ErrorResponse, "description": described_as.get(f"s{status}", described[status])}
        for status in statuses
    }
