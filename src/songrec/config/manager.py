"""The ConfigurationManager: config/config.yaml, config/schema.yaml and params.yaml, read once.

It turns the three files and the environment (config.environment) into frozen dataclasses, one per
stage (named like the stage), so a stage never sees a raw dict. Every rule broken raises ConfigError
naming the file, the key, the value and the rule. Nothing here creates folders or touches the network.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from songrec.config.environment import Environment
from songrec.config.rules import CONFIG_FILE, PARAMS_FILE, SCHEMA_FILE, Section, find_project_root, load_yaml
from songrec.config.schema_file import read_schema
from songrec.config.stage_configs import (
    BatchConfig,
    EvaluateConfig,
    IngestConfig,
    MonitorConfig,
    RetrainConfig,
    ServeConfig,
    StreamConfig,
    TrackingConfig,
    TrainConfig,
    TrainReferenceConfig,
    TransformConfig,
    ValidateConfig,
)
from songrec.config.train_params import boosting_params, cold_start_params, recommender_params
from songrec.contract.schema import DataSchema

RECOMMENDERS = ("hybrid", "reference")


class ConfigurationManager:
    """Reads the three configuration files once and hands each stage its frozen config."""

    def __init__(
        self,
        root: Path | None = None,
        *,
        params_file: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.environment = Environment.read(environ)
        self.root = find_project_root(root or self.environment.root)
        self.config_file = self.root / CONFIG_FILE
        self.schema_file = self.root / SCHEMA_FILE
        self.params_file = Path(params_file) if params_file else self.root / PARAMS_FILE
        config = Section(CONFIG_FILE, load_yaml(self.config_file, CONFIG_FILE))
        schema = Section(SCHEMA_FILE, load_yaml(self.schema_file, SCHEMA_FILE))
        params = Section(PARAMS_FILE, load_yaml(self.params_file, PARAMS_FILE))
        # Build every config now so that a broken file fails before any stage starts.
        self.schema: DataSchema = read_schema(schema)
        self.seed = params.get("seed", int, check=lambda v: v >= 0, rule="must be >= 0")
        self._ingest = self._read_ingest(config.section("ingest"), config.section("retrain"))
        self._validate = self._read_validate(config.section("validate"))
        self._transform = self._read_transform(config.section("transform"), params.section("transform"))
        self._train_reference = self._read_train_reference(
            config.section("train_reference"), params.section("train_reference")
        )
        self._train = self._read_train(config.section("train"), params.section("train"))
        self._tracking = self._read_tracking(config.section("tracking"))
        self._serve = self._read_serve(config.section("serve"), config.section("batch"))
        self._evaluate = self._read_evaluate(config.section("evaluate"), params.section("evaluate"))
        self._retrain = self._read_retrain(config.section("retrain"))
        self._monitor = self._read_monitor(config.section("monitor"))
        self._batch = self._read_batch(config.section("batch"))
        self._stream = self._read_stream(config.section("stream"))
        for section in (config, schema, params):
            section.reject_unknown_keys()

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

    def batch(self) -> BatchConfig:
        return self._batch

    def stream(self) -> StreamConfig:
        return self._stream

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

    def _read_ingest(self, section: Section, retrain: Section) -> IngestConfig:
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
        return IngestConfig(
            source=source,
            sha256=sha,
            raw_dir=self.path(section.text("raw_dir")),
            timeout_seconds=section.positive_float("timeout_seconds"),
            s3_endpoint_url=self.environment.s3_endpoint_url,
            additions_dir=self.path(retrain.text("additions_dir")),
        )

    def _read_validate(self, section: Section) -> ValidateConfig:
        return ValidateConfig(
            raw_tracks=self._ingest.raw_tracks,
            schema_file=self.path(section.text("schema")),
            schema=self.schema,
            validated_dir=self.path(section.text("validated_dir")),
            report=self.path(section.text("report")),
            max_quarantined_share=section.share("max_quarantined_share", allow_zero=True),
        )

    def _read_transform(self, config: Section, params: Section) -> TransformConfig:
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

    def _read_train_reference(self, config: Section, params: Section) -> TrainReferenceConfig:
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
            max_training_tracks=params.limit("max_training_tracks"),
        )

    def _read_train(self, config: Section, params: Section) -> TrainConfig:
        return TrainConfig(
            catalog=self._transform.catalog,
            memberships=self._transform.memberships,
            reference_model=self._train_reference.model,
            model_dir=self.path(config.text("model_dir")),
            schema=self.schema,
            seed=self.seed,
            recommender=recommender_params(params.section("recommender"), RECOMMENDERS),
            genre=boosting_params(params.section("genre")),
            popularity=boosting_params(params.section("popularity")),
            cold_start=cold_start_params(params.section("cold_start")),
        )

    def _read_tracking(self, section: Section) -> TrackingConfig:
        experiment = section.text("experiment")
        registered_model = section.text("registered_model")
        local = self.path(section.text("local_dir"))  # read (and checked) even when a server is set
        server = self.environment.tracking_server
        if server is not None:
            return TrackingConfig(
                uri=server.uri,
                experiment=experiment,
                registered_model=registered_model,
                artifact_location=None,
                backend=server.backend,
                username=server.username,
                password=server.password,
            )
        return TrackingConfig(
            uri=f"sqlite:///{local / 'mlflow.db'}",
            experiment=experiment,
            registered_model=registered_model,
            artifact_location=(local / "artifacts").as_uri(),
            backend="local",
        )

    def _read_serve(self, section: Section, batch: Section) -> ServeConfig:
        local_store = f"sqlite:///{self.path(section.text('event_store'))}"
        url = self.environment.event_store_url or local_store
        port = section.get("port", int, check=lambda v: 0 < v < 65536, rule="must be a TCP port")
        default_k = section.positive_int("default_k")
        max_k = section.positive_int("max_k")
        if default_k > max_k:
            raise section.fail("default_k", default_k, f"must not exceed max_k ({max_k})")
        rates = section.route_rates("rate_limits")  # checked even when SONGREC_RATE_LIMITS=off
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
            compute_short_ms=section.positive_float("compute_short_ms"),
            event_store_url=url,
            event_spool_dir=self.path(section.text("event_spool")),
            admin_token=self.environment.admin_token,
            labeler_token=self.environment.labeler_token,
            label_rows_per_hour=section.positive_int("label_rows_per_hour"),
            header_timeout_seconds=section.positive_float("header_timeout_seconds"),
            body_timeout_seconds=section.positive_float("body_timeout_seconds"),
            max_connections=section.positive_int("max_connections"),
            rate_limits=rates if self.environment.rate_limits else {},
            rate_limit_burst_seconds=section.positive_float("rate_limit_burst_seconds"),
            bundle_file=self.environment.bundle,
            event_logging=self.environment.event_logging,
            event_hold_seconds=self.environment.event_hold_seconds,
            bundle=self._train.bundle,
            tracking=self._tracking,
            schema=self.schema,
            batch_dir=self._batch_dir(batch),
        )

    def _batch_dir(self, batch: Section) -> Path:
        configured = self.path(batch.text("output_dir"))  # read either way: a known key
        return self.environment.batch_dir or configured

    def _read_retrain(self, section: Section) -> RetrainConfig:
        local_incoming = str(self.path(section.text("incoming")))
        incoming = self.environment.incoming_url or local_incoming
        return RetrainConfig(
            incoming=incoming,
            additions_dir=self._ingest.additions_dir,
            source=self._ingest.source,
            ingestion_record=self._ingest.record,
            schema=self.schema,
            s3_endpoint_url=self._ingest.s3_endpoint_url,
        )

    def _read_batch(self, section: Section) -> BatchConfig:
        k = section.positive_int("k")
        if k > self._serve.max_k:
            raise section.fail("k", k, f"must not exceed serve.max_k ({self._serve.max_k})")
        return BatchConfig(
            output_dir=self._serve.batch_dir or self.path(section.text("output_dir")),
            chunk_rows=section.positive_int("chunk_rows"),
            workers=section.positive_int("workers"),
            k=k,
            memberships=self._train.memberships,
            event_store_url=self._serve.event_store_url,
            s3_endpoint_url=self._ingest.s3_endpoint_url,
            serve=self._serve,
        )

    def _read_stream(self, section: Section) -> StreamConfig:
        names = {key: section.text(key) for key in ("requests", "results", "dead_letter", "group")}
        configured_url = section.text("url")
        return StreamConfig(
            url=self.environment.stream_url or configured_url,
            batch_size=section.positive_int("batch_size"),
            block_ms=section.positive_int("block_ms"),
            claim_idle_ms=section.positive_int("claim_idle_ms"),
            metrics_port=section.get(
                "metrics_port", int, check=lambda v: 0 <= v < 65536, rule="must be a TCP port or 0"
            ),
            serve=self._serve,
            **names,
        )

    def _read_monitor(self, section: Section) -> MonitorConfig:
        return MonitorConfig(
            reports_dir=self.path(section.text("reports_dir")),
            window_hours=section.positive_float("window_hours"),
            max_window_requests=section.positive_int("max_window_requests"),
            reference_sample=section.positive_int("reference_sample"),
            drift_share=section.share("drift_share"),
            min_hit_rate=section.share("min_hit_rate", allow_zero=True),
            min_feedback=section.positive_int("min_feedback"),
            retrain_on_drift=section.get("retrain_on_drift", bool),
            event_store_url=self._serve.event_store_url,
            alert_webhook_url=self.environment.alert_webhook_url,
            incoming=self._retrain.incoming,
            s3_endpoint_url=self._ingest.s3_endpoint_url,
            serve=self._serve,
            seed=self.seed,
        )

    def _read_evaluate(self, config: Section, params: Section) -> EvaluateConfig:
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
            # Above 0.1 the gate would pass a model a tenth worse: a typo, not a policy.
            tolerance = tolerances.get(name, float, check=lambda v: 0 <= v <= 0.1, rule="must be in [0, 0.1]")
            pairs.append((name, tolerance))
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
            max_playlists=params.limit("max_playlists"),
            promotion_tolerances=tuple(pairs),
            tracking=self._tracking,
            params_file=self.params_file,
            integer_features=frozenset(
                {rule.name for rule in self.schema.columns if rule.dtype == "int"} | {"year"}
            ),
            event_store_url=self._serve.event_store_url,
            project_root=self.root,
            dvc_experiment=self.environment.dvc_experiment,
        )
