"""Errors that the CLI turns into a one-line message and a non-zero exit code."""


class SongrecError(Exception):
    """Base of every error songrec raises on purpose."""


class ConfigError(SongrecError):
    """A configuration file is missing, malformed, or breaks a rule."""


class IngestionError(SongrecError):
    """The source cannot be fetched, read, or does not match its checksum."""


class ValidationFailed(SongrecError):
    """The data breaks its contract (config/schema.yaml)."""


class StageInputMissing(SongrecError):
    """A stage's input is not there: an upstream stage has not run."""


class TrackingError(SongrecError):
    """MLflow tracking or registry cannot be reached or used."""
