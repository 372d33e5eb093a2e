"""The event store's tables, on one SQLAlchemy MetaData: the request log and the monitoring tables.

One database (a SQLite file by default, PostgreSQL by SONGREC_EVENT_STORE_URL) that the API
writes (requests, recommendations, feedback, labels), the pipeline writes (promotions), the
monitoring run writes (drift runs, online quality, alerts, retraining decisions), and the
/monitoring page and Grafana read.

- requests: one row per API request (request_id, time in UTC, endpoint, HTTP status, model
  version, input track ids, the feature rows sent, k, latency);
- recommendations: the ranked tracks a /recommend request returned (request_id, rank, track_id,
  score);
- feedback: play, skip, like or dislike of a track, joined to its request by request_id;
- event_spools: the last spooled delivery written from each API process (exactly once on replay);
- batch_recommendations, batch_predictions: what `songrec batch` scored (PostgreSQL stores only),
  keyed by batch_run_id so that a rerun replaces its own rows.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
)

metadata = MetaData()


requests_table = Table(
    "requests",
    metadata,
    Column("request_id", Uuid(as_uuid=True), primary_key=True),
    Column("time", DateTime(timezone=True), nullable=False, index=True),  # UTC
    Column("endpoint", String(64), nullable=False),
    Column("status", Integer, nullable=False),
    Column("model_version", String(64)),
    Column("input_track_ids", JSON(none_as_null=True)),  # the catalog ids the request named, as sent
    Column("n_feature_tracks", Integer),
    Column(
        "input_tracks", JSON(none_as_null=True)
    ),  # the feature rows sent for tracks the catalog may not know
    Column("k", Integer),
    Column("latency_ms", Float, nullable=False),
)


recommendations_table = Table(
    "recommendations",
    metadata,
    Column("request_id", Uuid(as_uuid=True), primary_key=True),
    Column("rank", Integer, primary_key=True),
    Column("track_id", String(64), nullable=False, index=True),
    Column("score", Float, nullable=False),
)


feedback_table = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", Uuid(as_uuid=True), nullable=False, index=True),
    Column("track_id", String(64), nullable=False),
    Column("event", String(16), nullable=False),
    Column("time", DateTime(timezone=True), nullable=False, index=True),  # UTC
)


# How far the writer got in each API process's spool (store.spool): updated in the transaction
# that writes the events, so a delivery handed over again after a crash is skipped, not doubled.
event_spools = Table(
    "event_spools",
    metadata,
    Column("spool_id", String(32), primary_key=True),
    Column("last_seq", BigInteger, nullable=False),
)


drift_runs = Table(
    "drift_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", DateTime(timezone=True), nullable=False, index=True),
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("window_end", DateTime(timezone=True), nullable=False),
    Column("model_version", String(64)),
    Column("reference", String(200), nullable=False),  # what the window was compared with
    Column("n_reference", Integer, nullable=False),
    Column("n_current", Integer, nullable=False),
    Column("n_requests", Integer, nullable=False),
    Column("drift_share", Float),  # share of features that drifted
    Column("drift_threshold", Float, nullable=False),
    Column("dataset_drift", Boolean, nullable=False),
    Column("features", JSON),  # {feature: {"score", "method", "threshold", "drifted"}}
    Column("report_path", Text),
)


online_quality = Table(
    "online_quality",
    metadata,
    Column("day", Date, primary_key=True),
    Column("model_version", String(64), primary_key=True),
    Column("computed_at", DateTime(timezone=True), nullable=False),
    Column("requests", Integer, nullable=False),
    Column("recommended_with_feedback", Integer, nullable=False),
    Column("hits", Integer, nullable=False),  # recommended tracks later played or liked
    Column("hit_rate", Float),
    Column("mean_similarity", Float),  # playlist-to-recommendation cosine (the reference system's chart)
    Column("labelled_tracks", Integer, nullable=False),
    Column("genre_correct", Integer, nullable=False),
    Column("genre_accuracy", Float),
)


# Who sent which labels: one row per accepted POST /labels (the labeler's token, its address).
label_batches = Table(
    "label_batches",
    metadata,
    Column("batch_id", Uuid(as_uuid=True), primary_key=True),
    Column("time", DateTime(timezone=True), nullable=False, index=True),
    Column("source_address", String(64), nullable=False, index=True),
    Column("sender", String(32), nullable=False),  # which token: "labeler"
    Column("rows", Integer, nullable=False),
    Column("track_ids", JSON, nullable=False),
)

labels = Table(
    "labels",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", DateTime(timezone=True), nullable=False, index=True),
    Column("track_id", String(64), nullable=False, index=True),
    Column("genre", String(32), nullable=False),
    Column("row", JSON, nullable=False),  # the track as a row of the source data (config/schema.yaml)
    Column("exported_at", DateTime(timezone=True)),  # when it went to the incoming folder
)


# Labels held for review: one that contradicts the catalog or an earlier label (another genre for
# a known track) waits here, out of the export and the quality figures, until someone decides
# (`songrec labels accept|reject`). No row: the label went through unquestioned.
label_reviews = Table(
    "label_reviews",
    metadata,
    Column("label_id", Integer, primary_key=True),  # labels.id
    Column("reason", Text, nullable=False),
    Column("decision", String(16)),  # NULL while held; accepted | rejected
    Column("decided_at", DateTime(timezone=True)),
)


alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", DateTime(timezone=True), nullable=False, index=True),
    Column("kind", String(32), nullable=False),  # drift | quality
    Column("metric", String(64), nullable=False),
    Column("value", Float),
    Column("threshold", Float),
    Column("message", Text, nullable=False),
    Column("delivery", String(200)),  # webhook outcome, or "log only"
)


promotions = Table(
    "promotions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", DateTime(timezone=True), nullable=False, index=True),
    Column("model", String(200), nullable=False),
    Column("action", String(16), nullable=False),  # promote | rollback
    Column("from_version", String(64)),
    Column("to_version", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("metrics_from", JSON),
    Column("metrics_to", JSON),
    Column("run_id", String(64)),
)


retraining_decisions = Table(
    "retraining_decisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", DateTime(timezone=True), nullable=False, index=True),
    Column("drift_run_id", Integer),
    Column("triggered", Boolean, nullable=False),
    Column("reason", Text, nullable=False),
    Column("hit_rate", Float),
    Column("dataset_drift", Boolean),
)


batch_recommendations_table = Table(
    "batch_recommendations",
    metadata,
    Column("batch_run_id", String(64), nullable=False, index=True),
    Column("model_version", String(64), nullable=False),
    Column("playlist_id", String(128), nullable=False, index=True),
    Column("rank", Integer, nullable=False),
    Column("track_id", String(64), nullable=False),
    Column("score", Float, nullable=False),
)

batch_predictions_table = Table(
    "batch_predictions",
    metadata,
    Column("batch_run_id", String(64), nullable=False, index=True),
    Column("model_version", String(64), nullable=False),
    Column("task", String(16), nullable=False),  # genre or popularity
    Column("row", Integer, nullable=False),  # the input row
    Column("track_id", String(64)),  # when the input named the track by id
    Column("genre", String(32)),
    Column("probability", Float),  # of the predicted genre
    Column("popularity", Float),
)
