"""The one way to reach the event store's database: an engine for its URL, tables created.

SQLite by default (a file in the project, in WAL mode so that readers read while the API
writes), PostgreSQL (or any SQLAlchemy URL) by SONGREC_EVENT_STORE_URL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError

from songrec.core.errors import ConfigError
from songrec.store.schema import metadata


def make_engine(url: str, connect_timeout: float = 3.0) -> Engine:
    """An engine for the event store URL: SQLite (its folder created, WAL) or a server."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"event store URL {url!r} (SONGREC_EVENT_STORE_URL): {exc}") from exc
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        connect_args["timeout"] = connect_timeout
    elif parsed.get_backend_name() == "postgresql":
        connect_args["connect_timeout"] = max(1, round(connect_timeout))
    try:
        engine = create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    except (ArgumentError, ImportError) as exc:
        raise ConfigError(f"event store URL {safe_url(url)} (SONGREC_EVENT_STORE_URL): {exc}") from exc
    if parsed.get_backend_name() == "sqlite":
        # WAL lets readers (monitoring, dashboards) read while the API writes.
        event.listen(engine, "connect", sqlite_wal)
    return engine


def sqlite_wal(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # in WAL mode: durable at checkpoints, never corrupt
    cursor.close()


def safe_url(url: str) -> str:
    """The URL without its password, for logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid URL>"


def connect(url: str) -> Engine:
    """An engine on the store, with every table (request log included) created if missing."""
    engine = make_engine(url)
    metadata.create_all(engine, checkfirst=True)
    return engine
