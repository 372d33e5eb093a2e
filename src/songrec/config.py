"""Configuration: config/config.yaml, config/schema.yaml and params.yaml, read once and checked.

The ConfigurationManager turns the three files into frozen dataclasses, one per stage (named
like the stage), so a stage never sees a raw dict. Every rule broken raises ConfigError naming
the file, the key, the value and the rule. Endpoints and secrets come only from the
environment. Nothing here creates folders or touches the network.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from box import Box

from songrec.errors import ConfigError

CONFIG_FILE = "config/config.yaml"
SCHEMA_FILE = "config/schema.yaml"
PARAMS_FILE = "params.yaml"

RECOMMENDERS = ("hybrid", "reference")
DTYPES = ("str", "int", "float")

T = TypeVar("T")
_MISSING = object()


# --------------------------------------------------------------------------- schema


@dataclass(frozen=True)
class ColumnRule:
    """The contract of one column of the source data."""

    name: str
    dtype: str
    nullable: bool
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    max_exclusive: bool = False
    allowed: tuple[Any, ...] | None = None
    pattern: str | None = None

    def describe_range(self) -> str:
        low = "(" if self.min_exclusive else "["
        high = ")" if self.max_exclusive else "]"
        lo = "-inf" if self.min is None else f"{self.min:g}"
        hi = "inf" if self.max is None else f"{self.max:g}"
        return f"{low}{lo}, {hi}{high}"


@dataclass(frozen=True)
class DataSchema:
    """config/schema.yaml: the data contract of the source and of API requests."""

    columns: tuple[ColumnRule, ...]
    unique: tuple[str, ...]
    audio_features: tuple[str, ...]
    genre_target: str
    popularity_target: str

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(rule.name for rule in self.columns)

    def column(self, name: str) -> ColumnRule:
        for rule in self.columns:
            if rule.name == name:
                return rule
        raise KeyError(name)

    @property
    def genres(self) -> tuple[str, ...]:
        allowed = self.column(self.genre_target).allowed
        return tuple(str(genre) for genre in allowed or ())


# --------------------------------------------------------------------------- stages


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

    @property
    def model(self) -> Path:
        return self.model_dir / "reference.joblib"


@dataclass(frozen=True)
class RecommenderParams:
    name: str
    training_holdout_share: float
    candidates_per_playlist: int
    random_negatives_per_playlist: int
    regularization_c: float


@dataclass(frozen=True)
class BoostingParams:
    max_iter: int
    learning_rate: float
    max_leaf_nodes: int
    l2_regularization: float


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

    @property
    def bundle(self) -> Path:
        return self.model_dir / "bundle.joblib"


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
    promotion_tolerances: tuple[tuple[str, float], ...]
    tracking: TrackingConfig
    params_file: Path
    integer_features: frozenset[str]  # numeric model inputs that are whole numbers
    event_store_url: str  # where moves of the champion alias are recorded (monitoring)

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
    event_store_url: str  # SQLAlchemy URL
    admin_token: str | None = field(repr=False)
    bundle: Path  # the local bundle, served when the registry has no champion
    tracking: TrackingConfig
    schema: DataSchema


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
    event_store_url: str
    alert_webhook_url: str | None = field(repr=False)
    incoming: str  # where labelled new tracks are exported for retraining
    s3_endpoint_url: str | None
    serve: ServeConfig = field(repr=False)
    seed: int = 42


# --------------------------------------------------------------------------- reading


def find_project_root(start: Path | None = None) -> Path:
    """The folder holding config/config.yaml: SONGREC_ROOT, else `start` or cwd and upwards."""
    if start is None and os.environ.get("SONGREC_ROOT"):
        start = Path(os.environ["SONGREC_ROOT"])
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise ConfigError(
        f"{CONFIG_FILE} not found in {here} or any parent folder: "
        "run songrec from the project folder or set SONGREC_ROOT"
    )


def load_yaml(path: Path, label: str) -> Box:
    """Read one YAML mapping; a missing file or bad syntax is a ConfigError naming the file."""
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise ConfigError(f"{label}: file not found ({path})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{label}: malformed YAML{where}: {problem}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: expected a mapping at the top level, got {type(data).__name__}")
    return Box(data, frozen_box=True)


class _Section:
    """Typed, rule-checked access to one YAML file; errors name file, key, value and rule."""

    def __init__(self, label: str, data: Box | Mapping[str, Any], prefix: str = "") -> None:
        self.label = label
        self.data = data
        self.prefix = prefix

    def fail(self, key: str, value: Any, rule: str) -> ConfigError:
        return ConfigError(f"{self.label}: {self.prefix}{key} = {value!r}: {rule}")

    def section(self, key: str) -> _Section:
        value = self.get(key, dict)
        return _Section(self.label, value, f"{self.prefix}{key}.")

    def get(
        self,
        key: str,
        kind: type[T] | tuple[type, ...],
        *,
        check: Callable[[Any], bool] | None = None,
        rule: str = "",
        default: Any = _MISSING,
    ) -> T:
        if key not in self.data:
            if default is not _MISSING:
                return default  # type: ignore[no-any-return,unused-ignore]
            raise ConfigError(f"{self.label}: missing key {self.prefix}{key}")
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if list in kinds:  # a frozen Box holds YAML lists as tuples
            kinds = (*kinds, tuple)
        # YAML reads 1 as int where a float is wanted; bool is an int to Python but never here.
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise self.fail(key, value, f"must be of type {names}")
        if check is not None and not check(value):
            raise self.fail(key, value, rule)
        return value  # type: ignore[return-value]

    def share(self, key: str, *, allow_zero: bool = False) -> float:
        low = "[0" if allow_zero else "(0"
        return self.get(
            key,
            float,
            check=lambda v: (0 <= v < 1) if allow_zero else (0 < v < 1),
            rule=f"must be a share in {low}, 1)",
        )

    def positive_int(self, key: str) -> int:
        return self.get(key, int, check=lambda v: v > 0, rule="must be a positive integer")

    def positive_float(self, key: str) -> float:
        return self.get(key, float, check=lambda v: v > 0, rule="must be positive")

    def text(self, key: str) -> str:
        return self.get(key, str, check=lambda v: v.strip() != "", rule="must not be empty")

    def string_list(self, key: str) -> tuple[str, ...]:
        values: Any = self.get(key, (list, tuple), check=lambda v: len(v) > 0, rule="must not be empty")
        for value in values:
            if not isinstance(value, str):
                raise self.fail(key, list(values), "must be a list of names")
        return tuple(values)


# --------------------------------------------------------------------------- manager


class ConfigurationManager:
    """Reads the three configuration files once and hands each stage its frozen config."""

    def __init__(
        self,
        root: Path | None = None,
        *,
        params_file: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.root = find_project_root(root)
        self.environ = dict(os.environ if environ is None else environ)
        self.config_file = self.root / CONFIG_FILE
        self.schema_file = self.root / SCHEMA_FILE
        self.params_file = Path(params_file) if params_file else self.root / PARAMS_FILE
        config = _Section(CONFIG_FILE, load_yaml(self.config_file, CONFIG_FILE))
        schema = _Section(SCHEMA_FILE, load_yaml(self.schema_file, SCHEMA_FILE))
        params = _Section(PARAMS_FILE, load_yaml(self.params_file, PARAMS_FILE))
        # Build every config now so that a broken file fails before any stage starts.
        self.schema = self._read_schema(schema)
        self.seed = params.get("seed", int, check=lambda v: v >= 0, rule="must be >= 0")
        self._ingest = self._read_ingest(config.section("ingest"), config.section("retrain"))
        self._validate = self._read_validate(config.section("validate"))
        self._transform = self._read_transform(config.section("transform"), params.section("transform"))
        self._train_reference = self._read_train_reference(
            config.section("train_reference"), params.section("train_reference")
        )
        self._train = self._read_train(config.section("train"), params.section("train"))
        self._tracking = self._read_tracking(config.section("tracking"))
        self._serve = self._read_serve(config.section("serve"))
        self._evaluate = self._read_evaluate(config.section("evaluate"), params.section("evaluate"))
        self._retrain = self._read_retrain(config.section("retrain"))
        self._monitor = self._read_monitor(config.section("monitor"))

    # stage configs, named like the stages -------------------------------------------------

    def ingest(self) -> IngestConfig:
        return self._ingest

    def validate(self) -> ValidateConfig:
        return self._validate

    def transform(self) -> TransformConfig:
        return self._transform

    def train_reference(self) -> TrainReferenceConfig:
        return self._train_reference

    def train(self) -> TrainConfig:
        return self._train

    def evaluate(self) -> EvaluateConfig:
        return self._evaluate

    def tracking(self) -> TrackingConfig:
        return self._tracking

    def serve(self) -> ServeConfig:
        return self._serve

    def retrain(self) -> RetrainConfig:
        return self._retrain

    def monitor(self) -> MonitorConfig:
        return self._monitor

    def path(self, value: str | Path) -> Path:
        """A configured path, made absolute against the project root."""
        path = Path(value)
        return path if path.is_absolute() else self.root / path

    def relative(self, path: Path) -> str:
        """A path as DVC and people see it: relative to the project root when inside it."""
        try:
            return Path(path).resolve().relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    # readers -------------------------------------------------------------------------------

    def _read_schema(self, schema: _Section) -> DataSchema:
        columns_section = schema.section("columns")
        rules = []
        for name in columns_section.data:
            spec = columns_section.section(name)
            dtype = spec.get("dtype", str, check=lambda v: v in DTYPES, rule=f"must be one of {DTYPES}")
            bound = (int, float)
            rule = ColumnRule(
                name=name,
                dtype=dtype,
                nullable=spec.get("nullable", bool, default=False),
                min=spec.get("min", bound, default=None),
                max=spec.get("max", bound, default=None),
                min_exclusive=spec.get("min_exclusive", bool, default=False),
                max_exclusive=spec.get("max_exclusive", bool, default=False),
                allowed=tuple(spec.get("allowed", list, default=None) or ()) or None,
                pattern=spec.get("pattern", str, default=None),
            )
            if rule.min is not None and rule.max is not None and rule.min > rule.max:
                raise spec.fail("min", rule.min, f"must not exceed max ({rule.max})")
            rules.append(rule)
        names = {rule.name for rule in rules}

        def known_columns(key: str) -> tuple[str, ...]:
            values = schema.string_list(key)
            unknown = [value for value in values if value not in names]
            if unknown:
                raise schema.fail(key, list(values), f"names columns not in columns: {unknown}")
            return values

        targets = schema.section("targets")
        genre = targets.get("genre", str, check=lambda v: v in names, rule="must name a column")
        popularity = targets.get("popularity", str, check=lambda v: v in names, rule="must name a column")
        if not next(r for r in rules if r.name == genre).allowed:
            raise targets.fail("genre", genre, "the genre column must list its allowed values")
        return DataSchema(
            columns=tuple(rules),
            unique=known_columns("unique"),
            audio_features=known_columns("audio_features"),
            genre_target=genre,
            popularity_target=popularity,
        )

    def _read_ingest(self, section: _Section, retrain: _Section) -> IngestConfig:
        sha: str | None = section.get(
            "sha256",
            (str, type(None)),
            check=lambda v: v is None or (len(v) == 64 and all(c in "0123456789abcdef" for c in v)),
            rule="must be null or 64 lowercase hex digits",
        )
        source = section.text("source")
        if "://" not in source:
            source = str(self.path(source))
        elif source.split("://", 1)[0] not in ("file", "http", "https", "s3"):
            raise section.fail("source", source, "must be a path or a file://, http(s):// or s3:// URL")
        endpoint = self.environ.get("AWS_ENDPOINT_URL_S3") or self.environ.get("AWS_ENDPOINT_URL")
        return IngestConfig(
            source=source,
            sha256=sha,
            raw_dir=self.path(section.text("raw_dir")),
            timeout_seconds=section.positive_float("timeout_seconds"),
            s3_endpoint_url=endpoint or None,
            additions_dir=self.path(retrain.text("additions_dir")),
        )

    def _read_validate(self, section: _Section) -> ValidateConfig:
        return ValidateConfig(
            raw_tracks=self._ingest.raw_tracks,
            schema_file=self.path(section.text("schema")),
            schema=self.schema,
            validated_dir=self.path(section.text("validated_dir")),
            report=self.path(section.text("report")),
            max_quarantined_share=section.share("max_quarantined_share", allow_zero=True),
        )

    def _read_transform(self, config: _Section, params: _Section) -> TransformConfig:
        return TransformConfig(
            validated_tracks=self._validate.validated_tracks,
            processed_dir=self.path(config.text("processed_dir")),
            schema=self.schema,
            seed=self.seed,
            eval_playlist_share=params.share("eval_playlist_share"),
            holdout_share=params.share("holdout_share"),
            min_playlist_tracks=params.get(
                "min_playlist_tracks", int, check=lambda v: v >= 2, rule="must be at least 2"
            ),
            test_share=params.share("test_share"),
        )

    def _read_train_reference(self, config: _Section, params: _Section) -> TrainReferenceConfig:
        features = params.string_list("features")
        unknown = [f for f in features if f not in self.schema.audio_features]
        if unknown:
            raise params.fail("features", list(features), f"not audio features in {SCHEMA_FILE}: {unknown}")
        return TrainReferenceConfig(
            catalog=self._transform.catalog,
            model_dir=self.path(config.text("model_dir")),
            seed=self.seed,
            features=features,
            learning_rate=params.positive_float("learning_rate"),
            max_depth=params.positive_int("max_depth"),
            n_estimators=params.positive_int("n_estimators"),
            mixture_components=params.positive_int("mixture_components"),
            mixture_covariance=params.get(
                "mixture_covariance",
                str,
                check=lambda v: v in ("full", "tied", "diag", "spherical"),
                rule="must be one of full, tied, diag, spherical",
            ),
            mixture_seed=params.get("mixture_seed", int),
        )

    def _read_train(self, config: _Section, params: _Section) -> TrainConfig:
        rec = params.section("recommender")
        recommender = RecommenderParams(
            name=rec.get(
                "name",
                str,
                check=lambda v: v in RECOMMENDERS,
                rule=f"unknown recommender; choose one of {', '.join(RECOMMENDERS)}",
            ),
            training_holdout_share=rec.share("training_holdout_share"),
            candidates_per_playlist=rec.positive_int("candidates_per_playlist"),
            random_negatives_per_playlist=rec.positive_int("random_negatives_per_playlist"),
            regularization_c=rec.positive_float("regularization_c"),
        )
        return TrainConfig(
            catalog=self._transform.catalog,
            memberships=self._transform.memberships,
            reference_model=self._train_reference.model,
            model_dir=self.path(config.text("model_dir")),
            schema=self.schema,
            seed=self.seed,
            recommender=recommender,
            genre=self._read_boosting(params.section("genre")),
            popularity=self._read_boosting(params.section("popularity")),
        )

    @staticmethod
    def _read_boosting(section: _Section) -> BoostingParams:
        return BoostingParams(
            max_iter=section.positive_int("max_iter"),
            learning_rate=section.positive_float("learning_rate"),
            max_leaf_nodes=section.get("max_leaf_nodes", int, check=lambda v: v >= 2, rule="must be >= 2"),
            l2_regularization=section.get(
                "l2_regularization", float, check=lambda v: v >= 0, rule="must be >= 0"
            ),
        )

    def _read_tracking(self, section: _Section) -> TrackingConfig:
        experiment = section.text("experiment")
        registered_model = section.text("registered_model")
        env = self.environ
        if env.get("MLFLOW_TRACKING_URI"):
            return TrackingConfig(
                uri=env["MLFLOW_TRACKING_URI"],
                experiment=experiment,
                registered_model=registered_model,
                artifact_location=None,
                backend="server",
                username=env.get("MLFLOW_TRACKING_USERNAME"),
                password=env.get("MLFLOW_TRACKING_PASSWORD"),
            )
        dagshub = [env.get(k) for k in ("DAGSHUB_REPO_OWNER", "DAGSHUB_REPO_NAME", "DAGSHUB_USER_TOKEN")]
        if any(dagshub):
            if not all(dagshub):
                missing = [
                    k
                    for k in ("DAGSHUB_REPO_OWNER", "DAGSHUB_REPO_NAME", "DAGSHUB_USER_TOKEN")
                    if not env.get(k)
                ]
                raise ConfigError(f"environment: DagsHub tracking needs {', '.join(missing)} too")
            owner, name, token = dagshub
            return TrackingConfig(
                uri=f"https://dagshub.com/{owner}/{name}.mlflow",
                experiment=experiment,
                registered_model=registered_model,
                artifact_location=None,
                backend="dagshub",
                username=env.get("DAGSHUB_USER_NAME") or owner,
                password=token,
            )
        local = self.path(section.text("local_dir"))
        return TrackingConfig(
            uri=f"sqlite:///{local / 'mlflow.db'}",
            experiment=experiment,
            registered_model=registered_model,
            artifact_location=(local / "artifacts").as_uri(),
            backend="local",
        )

    def _read_serve(self, section: _Section) -> ServeConfig:
        url = (
            self.environ.get("SONGREC_EVENT_STORE_URL")
            or f"sqlite:///{self.path(section.text('event_store'))}"
        )
        port = section.get("port", int, check=lambda v: 0 < v < 65536, rule="must be a TCP port")
        default_k = section.positive_int("default_k")
        max_k = section.positive_int("max_k")
        if default_k > max_k:
            raise section.fail("default_k", default_k, f"must not exceed max_k ({max_k})")
        return ServeConfig(
            host=section.text("host"),
            port=port,
            default_k=default_k,
            max_k=max_k,
            max_playlist_tracks=section.positive_int("max_playlist_tracks"),
            max_batch_tracks=section.positive_int("max_batch_tracks"),
            max_body_bytes=section.positive_int("max_body_bytes"),
            search_limit=section.positive_int("search_limit"),
            reload_interval_seconds=section.positive_float("reload_interval_seconds"),
            compute_threads=section.get(
                "compute_threads", int, check=lambda v: v >= 0, rule="must be 0 (on the event loop) or more"
            ),
            event_store_url=url,
            admin_token=self.environ.get("SONGREC_ADMIN_TOKEN") or None,
            bundle=self._train.bundle,
            tracking=self._tracking,
            schema=self.schema,
        )

    def _read_retrain(self, section: _Section) -> RetrainConfig:
        incoming = self.environ.get("SONGREC_INCOMING_URL") or str(self.path(section.text("incoming")))
        return RetrainConfig(
            incoming=incoming,
            additions_dir=self._ingest.additions_dir,
            source=self._ingest.source,
            ingestion_record=self._ingest.record,
            schema=self.schema,
            s3_endpoint_url=self._ingest.s3_endpoint_url,
        )

    def _read_monitor(self, section: _Section) -> MonitorConfig:
        return MonitorConfig(
            reports_dir=self.path(section.text("reports_dir")),
            window_hours=section.positive_float("window_hours"),
            max_window_requests=section.positive_int("max_window_requests"),
            reference_sample=section.positive_int("reference_sample"),
            drift_share=section.share("drift_share"),
            min_hit_rate=section.share("min_hit_rate", allow_zero=True),
            min_feedback=section.positive_int("min_feedback"),
            event_store_url=self._serve.event_store_url,
            alert_webhook_url=self.environ.get("SONGREC_ALERT_WEBHOOK_URL") or None,
            incoming=self._retrain.incoming,
            s3_endpoint_url=self._ingest.s3_endpoint_url,
            serve=self._serve,
            seed=self.seed,
        )

    def _read_evaluate(self, config: _Section, params: _Section) -> EvaluateConfig:
        k = params.get(
            "k",
            list,
            check=lambda v: len(v) > 0 and all(isinstance(x, int) and x > 0 for x in v),
            rule="must be a non-empty list of positive integers",
        )
        promotion = params.section("promotion")
        tolerances = promotion.section("tolerances")
        known = {f"recall_at_{x}" for x in k} | {f"ndcg_at_{x}" for x in k}
        known |= {"genre_macro_f1", "genre_accuracy", "popularity_r2"}
        pairs = []
        for name in tolerances.data:
            if name not in known:
                raise tolerances.fail(name, tolerances.data[name], f"unknown metric; known: {sorted(known)}")
            pairs.append((name, tolerances.get(name, float, check=lambda v: v >= 0, rule="must be >= 0")))
        return EvaluateConfig(
            catalog=self._transform.catalog,
            memberships=self._transform.memberships,
            eval_playlists=self._transform.eval_playlists,
            bundle=self._train.bundle,
            reference_model=self._train_reference.model,
            ingestion_record=self._ingest.record,
            validation_report=self._validate.report,
            metrics_dir=self.path(config.text("metrics_dir")),
            plots_dir=self.path(config.text("plots_dir")),
            promotion_report=self.path(config.text("promotion_report")),
            seed=self.seed,
            k=tuple(sorted(set(k))),
            promotion_tolerances=tuple(pairs),
            tracking=self._tracking,
            params_file=self.params_file,
            integer_features=frozenset(
                {rule.name for rule in self.schema.columns if rule.dtype == "int"} | {"year"}
            ),
            event_store_url=self._serve.event_store_url,
        )
