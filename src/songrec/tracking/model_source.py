"""Where the model to serve comes from, and loading it.

A ModelSource says which model should serve now (`locate`, cheap) and loads it (`load`):
- ChampionSource: the `champion` alias of the registered model in the MLflow registry, or the
  local bundle file when there is no registry (no local store yet, or a server that cannot be
  reached) or the registry has no champion;
- FileSource: one bundle file (`songrec serve --bundle`, SONGREC_BUNDLE), no registry.
Used by the API's model store and by the monitoring run (which model is serving).
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from songrec.config.stage_configs import TrackingConfig
from songrec.core.errors import SongrecError
from songrec.core.io import load_model
from songrec.models.bundle import SongrecBundle
from songrec.tracking.registry import CHAMPION, load_bundle, version_by_alias
from songrec.tracking.setup import configure, redact

log = logging.getLogger(__name__)


class ModelUnavailable(SongrecError):
    """No model can be located or loaded."""


@dataclass(frozen=True)
class ModelRef:
    """A model that can serve: its version as responses report it, where it comes from, its URI."""

    version: str  # the registry version ("3"), or "file-<stamp>" for a bundle file
    source: str  # "registry" or "file"
    uri: str  # models:/<name>/<version>, or the bundle file's path


class ModelSource(Protocol):
    def locate(self, serving: ModelRef | None = None) -> ModelRef:
        """The model that should serve now (`serving`: the one serving); ModelUnavailable if none."""
        ...

    def load(self, ref: ModelRef) -> SongrecBundle: ...


class FileSource:
    """A bundle file. Its version changes when the file does (size and modification time)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def locate(self, serving: ModelRef | None = None) -> ModelRef:
        try:
            stat = self.path.stat()
        except OSError as exc:
            raise ModelUnavailable(
                f"no bundle at {self.path}: run `make run` (or `songrec run train`)"
            ) from exc
        stamp = hashlib.sha1(f"{self.path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()
        return ModelRef(version=f"file-{stamp[:10]}", source="file", uri=str(self.path))

    def load(self, ref: ModelRef) -> SongrecBundle:
        return _load_bundle_file(Path(ref.uri))


class ChampionSource:
    """The registry's champion; the local bundle file when there is no registry or no champion."""

    def __init__(self, tracking: TrackingConfig, fallback: Path | None) -> None:
        self.tracking = tracking
        self.fallback = FileSource(fallback) if fallback is not None else None
        self._pointed = False
        self._last_state = ""
        self.registry_problem: str | None = None  # why the registry could not be read, if so

    @property
    def name(self) -> str:
        return self.tracking.registered_model

    def locate(self, serving: ModelRef | None = None) -> ModelRef:
        """The champion's version. Without one (no store, registry unreachable, no alias) the local
        bundle, unless a registry model is serving: only another champion replaces that one."""
        if (
            self.tracking.backend == "local"
            and not Path(self.tracking.uri.removeprefix("sqlite:///")).exists()
        ):
            return self._fall_back("no local MLflow store yet", serving)
        try:
            version = self._champion_version()
        except Exception as exc:  # an unreachable or broken registry: keep serving what we have
            # The exception's text (SQL, paths) goes to the log only: this reason reaches clients.
            log.debug("registry read failed: %s", exc)
            reason = f"registry {redact(self.tracking.uri)} unavailable ({type(exc).__name__})"
            self.registry_problem = reason
            return self._fall_back(reason, serving)
        self.registry_problem = None
        if version is None:
            return self._fall_back(f"registered model {self.name!r} has no {CHAMPION!r} alias", serving)
        self._note(f"registry {self.name}@{CHAMPION} is version {version}")
        return ModelRef(version=version, source="registry", uri=f"models:/{self.name}/{version}")

    def load(self, ref: ModelRef) -> SongrecBundle:
        if ref.source == "file":
            return _load_bundle_file(Path(ref.uri))
        self._point_mlflow()
        return load_registered_bundle(ref.uri)

    def _champion_version(self) -> str | None:
        self._point_mlflow()
        found = version_by_alias(self.name, CHAMPION)
        return None if found is None else str(found.version)

    def _point_mlflow(self) -> None:
        """Point MLflow at the registry, read-only (logging runs would create the experiment)."""
        if not self._pointed:
            configure(self.tracking, create_experiment=False)
            self._pointed = True

    def _fall_back(self, reason: str, serving: ModelRef | None) -> ModelRef:
        if serving is not None and serving.source == "registry":
            self._note(f"{reason}: still serving version {serving.version}")
            return serving
        if self.fallback is None:
            raise ModelUnavailable(f"nothing to serve: {reason}, and no local bundle is configured")
        try:
            ref = self.fallback.locate()
        except ModelUnavailable as exc:
            raise ModelUnavailable(f"nothing to serve: {reason}, and {exc}") from exc
        self._note(f"{reason}: serving the local bundle {self.fallback.path}")
        return ref

    def _note(self, state: str) -> None:
        if state != self._last_state:
            log.info("%s", state)
            self._last_state = state


def load_registered_bundle(model_uri: str) -> SongrecBundle:
    """The bundle of a registered songrec pyfunc model, read from its `bundle` artifact.

    The same file that mlflow.pyfunc.load_model reads (tracking.load_bundle), without importing
    the code model and checking its requirements, which costs about half a second at start.
    """
    import mlflow
    from mlflow.models import Model

    with tempfile.TemporaryDirectory(prefix="songrec-model-") as folder:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=folder))
        flavor = Model.load(local).flavors.get("python_function", {})
        artifact = flavor.get("artifacts", {}).get("bundle", {}).get("path")
        if artifact is None:  # not laid out as songrec logs it: let MLflow load it
            bundle: SongrecBundle = load_bundle(model_uri)
            return bundle
        return _load_bundle_file(local / artifact)


def _load_bundle_file(path: Path) -> SongrecBundle:
    try:
        bundle = load_model(path)
    except (ModuleNotFoundError, AttributeError) as exc:
        # A bundle pickled by classes that have since moved or changed: it cannot be served by
        # this code; train and register a new version (or roll back to one this code can load).
        raise ModelUnavailable(
            f"{path} was saved by another version of songrec and cannot be loaded by this one "
            f"({type(exc).__name__}: {exc}): run the pipeline to register a new version"
        ) from exc
    if not isinstance(bundle, SongrecBundle):
        raise ModelUnavailable(f"{path} holds a {type(bundle).__name__}, not a SongrecBundle")
    return bundle
