"""The frozen configs the ConfigurationManager hands out, one per stage and service.

Plain values and paths, already checked: whoever receives one never reads a file or the
environment to complete it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from songrec.config.params import BoostingParams, ColdStartParams, RecommenderParams
from songrec.contract.schema import DataSchema


@dataclass(frozen=True)
class IngestConfig:
    source: str
    sha256: str | None
    raw_dir: Path
    timeout_seconds: float
    s3_endpoint_url: str | None
    additions_dir: Path  # accepted new rows (retraining), read together with the source

    @property
    def raw_tracks(self) -> Path:
        return self.raw_dir / "tracks.parquet"

    @property
    def record(self) -> Path:
        return self.raw_dir / "ingestion.json"


@dataclass(frozen=True)
class ValidateConfig:
    raw_tracks: Path
    schema_file: Path
    schema: DataSchema
    validated_dir: Path
    report: Path
    max_quarantined_share: float

    @property
    def validated_tracks(self) -> Path:
        return self.validated_dir / "tracks.parquet"


@dataclass(frozen=True)
class TransformConfig:
    validated_tracks: Path
    processed_dir: Path
    schema: DataSchema
    seed: int
    eval_playlist_share: float
    holdout_share: float
    min_playlist_tracks: int
    test_share: float

    @property
    def catalog(self) -> Path:
        return self.processed_dir / "catalog.parquet"

    @property
    def memberships(self) -> Path:
        return self.processed_dir / "memberships.parquet"

    @property
    def eval_playlists(self) -> Path:
        return self.processed_dir / "eval_playlists.parquet"


@dataclass(frozen=True)
class TrainReferenceConfig:
    catalog: Path
    model_dir: Path
    seed: int
    features: tuple[str, ...]
    learning_rate: float
    max_depth: int
    n_estimators: int
    mixture_components: int
    mixture_covariance: str
    mixture_seed: int
    max_training_tracks: int | None

    @property
    def model(self) -> Path:
        return self.model_dir / "reference.pkl"


@dataclass(frozen=True)
class TrainConfig:
    catalog: Path
    memberships: Path
    reference_model: Path
    model_dir: Path
    schema: DataSchema
    seed: int
    recommender: RecommenderParams
    genre: BoostingParams
    popularity: BoostingParams
    cold_start: ColdStartParams

    @property
    def bundle(self) -> Path:
        return self.model_dir / "bundle.pkl"


@dataclass(frozen=True)
class TrackingConfig:
    """Where MLflow runs and the registry live. `uri` comes from the environment or is local."""

    uri: str
    experiment: str
    registered_model: str
    artifact_location: str | None  # set only for the local store
    backend: str  # "local", "server" or "dagshub"
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class EvaluateConfig:
    catalog: Path
    memberships: Path
    eval_playlists: Path
    bundle: Path
    reference_model: Path
    ingestion_record: Path
    validation_report: Path
    metrics_dir: Path
    plots_dir: Path
    promotion_report: Path
    seed: int
    k: tuple[int, ...]
    max_playlists: int | None  # a seeded sample of the evaluation playlists when there are more
    promotion_tolerances: tuple[tuple[str, float], ...]
    tracking: TrackingConfig
    params_file: Path
    integer_features: frozenset[str]  # numeric model inputs that are whole numbers
    event_store_url: str  # where moves of the champion alias are recorded (monitoring)
    project_root: Path  # the git work tree a run's lineage is read from
    dvc_experiment: str | None = None  # the `dvc exp run` experiment this run belongs to

    @property
    def metric_files(self) -> dict[str, Path]:
        return {name: self.metrics_dir / f"{name}.json" for name in ("genre", "popularity", "recommender")}


@dataclass(frozen=True)
class ServeConfig:
    host: str
    port: int
    default_k: int
    max_k: int
    max_playlist_tracks: int
    max_batch_tracks: int
    max_body_bytes: int
    search_limit: int
    reload_interval_seconds: float
    compute_threads: int  # threads that compute answers; 0: on the event loop
    compute_short_ms: float  # answers shorter than this (CPU) stay on the event loop
    event_store_url: str  # SQLAlchemy URL
    event_spool_dir: Path  # the request log's local spool (store.spool)
    admin_token: str | None = field(repr=False)
    bundle: Path  # the local bundle, served when the registry has no champion
    tracking: TrackingConfig
    schema: DataSchema
    bundle_file: Path | None = None  # serve this file instead of the registry (SONGREC_BUNDLE, --bundle)
    event_logging: bool = True  # log requests to the event store (SONGREC_EVENT_LOGGING)
    event_hold_seconds: float = 30.0  # how long the request log may hold writes in a burst
    batch_dir: Path | None = None  # songrec batch's outputs: GET /playlists/{id}/recommendations
    labeler_token: str | None = field(default=None, repr=False)  # POST /labels (unset: closed)
    label_rows_per_hour: int = 5000  # label rows one client address may send in an hour
    header_timeout_seconds: float = 10.0  # a request's headers must arrive within this
    body_timeout_seconds: float = 10.0  # its body within this (else 408)
    max_connections: int = 10_000  # connections at once (beyond: 503)
    rate_limits: Mapping[str, float] = field(default_factory=dict)  # route -> requests/s per client
    rate_limit_burst_seconds: float = 5.0  # a client's burst: this many seconds' worth at once


@dataclass(frozen=True)
class BatchConfig:
    output_dir: Path  # where `songrec batch` writes when no --output is given
    chunk_rows: int  # input rows read (and scored) per chunk
    workers: int  # processes that score recommend chunks
    k: int  # recommendations per playlist
    memberships: Path  # the catalog's own playlists (the default input of `batch recommend`)
    event_store_url: str
    s3_endpoint_url: str | None
    serve: ServeConfig


@dataclass(frozen=True)
class StreamConfig:
    url: str = field(repr=False)  # SONGREC_STREAM_URL, else config.yaml's stream.url
    requests: str
    results: str
    dead_letter: str
    group: str
    batch_size: int
    block_ms: int
    claim_idle_ms: int
    metrics_port: int
    serve: ServeConfig


@dataclass(frozen=True)
class RetrainConfig:
    incoming: str  # a local folder, or an s3:// prefix (SONGREC_INCOMING_URL)
    additions_dir: Path
    source: str
    ingestion_record: Path
    schema: DataSchema
    s3_endpoint_url: str | None


@dataclass(frozen=True)
class MonitorConfig:
    reports_dir: Path
    window_hours: float
    max_window_requests: int
    reference_sample: int
    drift_share: float
    min_hit_rate: float
    min_feedback: int
    retrain_on_drift: bool  # data drift alone triggers retraining
    event_store_url: str
    alert_webhook_url: str | None = field(repr=False)
    incoming: str  # where labelled new tracks are exported for retraining
    s3_endpoint_url: str | None
    serve: ServeConfig = field(repr=False)
    seed: int = 42
