"""Request and response models of the API.

The request contract is the data contract: the fields of a track given by its audio features,
their types and their ranges are built from config/schema.yaml (DataSchema) when the app is
created, never written here. A track's `year` is the release year of the release-date column,
so its range is the range of years that column's pattern allows. The limits (k, playlist and
batch sizes) come from the `serve` section of config/config.yaml.

Numbers are strict: "0.5" is not a number, 3.0 is not an integer, NaN and infinities are
refused. Unknown fields are refused, so a misspelt feature is named in the error.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidationInfo,
    create_model,
    field_validator,
)
from pydantic.json_schema import JsonDict
from pydantic_core import PydanticCustomError

from songrec.config.stage_configs import ServeConfig
from songrec.contract.features import numeric_features
from songrec.contract.schema import ColumnRule, DataSchema
from songrec.models.recommender.diversity import PAGE

# `year` (contract/features.py) is the release year of this column of the source data.
RELEASE_DATE_COLUMN = "track_album_release_date"
TRACK_ID_COLUMN = "track_id"
MAX_TEXT = 500


# --------------------------------------------------------------------------- requests


class TrackFeatures(BaseModel):
    """A track given by its audio features and release year (for songs the catalog does not know).

    The feature fields are added from the data contract by `build_request_models`.
    """

    model_config = ConfigDict(extra="forbid")

    track_artist: Annotated[str, StringConstraints(max_length=MAX_TEXT)] | None = Field(
        None, description="The artist, when known: tracks by the same artist are then found."
    )

    def values(self, names: Sequence[str]) -> list[float]:
        return [float(getattr(self, name)) for name in names]


# The document says what the validator checks: a request names at least one track.
AT_LEAST_ONE_TRACK: JsonDict = {
    "anyOf": [
        {"required": ["track_ids"], "properties": {"track_ids": {"minItems": 1}}},
        {"required": ["tracks"], "properties": {"tracks": {"minItems": 1}}},
    ]
}


class PlaylistRequest(BaseModel):
    """Tracks named by catalog id and/or given by their features."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=AT_LEAST_ONE_TRACK)

    track_ids: list[str] = Field(default_factory=list)
    tracks: list[TrackFeatures] = Field(default_factory=list)


class RecommendRequest(PlaylistRequest):
    k: int
    max_per_artist: int | None = None


class BatchRequest(PlaylistRequest):
    pass


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: uuid.UUID = Field(description="The request_id of the answer the track came with.")
    track_id: str
    event: Literal["play", "skip", "like", "dislike"]


@dataclass(frozen=True)
class RequestModels:
    """The request models of one app, built from its data contract and limits."""

    track_features: type[TrackFeatures]
    recommend: type[RecommendRequest]
    batch: type[BatchRequest]
    feedback: type[FeedbackRequest]
    feature_names: tuple[str, ...]  # the numeric fields of a feature row, in model order


def build_request_models(schema: DataSchema, config: ServeConfig) -> RequestModels:
    """Pydantic models whose fields, types and ranges come from the data contract and the limits."""
    names = numeric_features(schema.audio_features)
    fields: dict[str, Any] = {}
    for name in names:
        rule = _year_rule(schema) if name == "year" else schema.column(name)
        fields[name] = (_number_type(rule), ...)
    features = create_model(
        "TrackFeatures",
        __base__=TrackFeatures,
        __doc__=TrackFeatures.__doc__.split("\n")[0] if TrackFeatures.__doc__ else None,
        **fields,
    )
    track_id = _track_id_type(schema)
    playlist = _playlist_fields(track_id, features, config.max_playlist_tracks)
    recommend = create_model(
        "RecommendRequest",
        __base__=RecommendRequest,
        __doc__="A playlist (catalog ids and/or feature rows) and how many tracks to recommend.",
        __validators__={"size": _size_validator(config.max_playlist_tracks, "playlist")},
        k=(
            Annotated[int, Strict(), Field(ge=1, le=config.max_k)],
            Field(config.default_k, description=f"How many tracks to recommend (1 to {config.max_k})."),
        ),
        max_per_artist=(
            Annotated[int, Strict(), Field(ge=1, le=PAGE)] | None,
            Field(
                None,
                description=f"At most this many tracks of one artist on each page of {PAGE} ({PAGE}: "
                "no cap); left out, the model's default (`max_per_artist` of GET /ready).",
            ),
        ),
        **playlist,
    )
    batch = create_model(
        "BatchRequest",
        __base__=BatchRequest,
        __doc__="Tracks to predict for: catalog ids and/or feature rows.",
        __validators__={"size": _size_validator(config.max_batch_tracks, "batch")},
        **_playlist_fields(track_id, features, config.max_batch_tracks),
    )
    feedback = create_model(
        "FeedbackRequest",
        __base__=FeedbackRequest,
        track_id=(track_id, Field(description="The catalog id of the track the event is about.")),
    )
    return RequestModels(
        track_features=features, recommend=recommend, batch=batch, feedback=feedback, feature_names=names
    )


def _playlist_fields(track_id: Any, features: type[TrackFeatures], limit: int) -> dict[str, Any]:
    return {
        "track_ids": (
            list[track_id],
            Field(
                default_factory=list,
                max_length=limit,
                description="Catalog track ids; ids the catalog does not know are reported back.",
            ),
        ),
        "tracks": (
            list[features],  # type: ignore[valid-type]
            Field(
                default_factory=list,
                max_length=limit,
                validate_default=True,
                description="Tracks given by their audio features and release year.",
            ),
        ),
    }


def _size_validator(limit: int, what: str) -> Any:
    """On `tracks` (validated last): the request names at least one and at most `limit` tracks."""

    def check_size(tracks: list[Any], info: ValidationInfo) -> list[Any]:
        ids = info.data.get("track_ids")
        if ids is None:  # track_ids itself is invalid and already reported
            return tracks
        total = len(ids) + len(tracks)
        if total == 0:
            raise PydanticCustomError(
                "empty_playlist", f"the {what} is empty: give track_ids, tracks or both"
            )
        if total > limit:
            raise PydanticCustomError(
                "too_many_tracks",
                f"the {what} has {total} tracks (track_ids and tracks together); at most {limit} are allowed",
            )
        return tracks

    return field_validator("tracks")(check_size)


def _track_id_type(schema: DataSchema) -> Any:
    pattern = schema.column(TRACK_ID_COLUMN).pattern
    if not pattern:
        return Annotated[str, StringConstraints(min_length=1, max_length=64)]
    return Annotated[str, StringConstraints(pattern=f"^(?:{pattern})$")]


def _number_type(rule: ColumnRule) -> Any:
    """A strict int or finite float with the rule's range (or allowed values), for the model and OpenAPI."""
    constraints: dict[str, Any] = {}
    if rule.min is not None:
        constraints["gt" if rule.min_exclusive else "ge"] = rule.min
    if rule.max is not None:
        constraints["lt" if rule.max_exclusive else "le"] = rule.max
    description = (
        f"{rule.name}: {'one of ' + str(list(rule.allowed)) if rule.allowed else rule.describe_range()}"
    )
    if rule.dtype == "int":
        extra: list[Any] = []
        if rule.allowed:
            constraints["json_schema_extra"] = {"enum": list(rule.allowed)}
            extra.append(AfterValidator(_one_of(rule.allowed)))
        return Annotated[int, Strict(), Field(description=description, **constraints), *extra]
    return Annotated[float, Strict(), Field(description=description, allow_inf_nan=False, **constraints)]


def _one_of(allowed: Sequence[Any]) -> Callable[[int], int]:
    def check(value: int) -> int:
        if value not in allowed:
            raise PydanticCustomError("not_allowed", "must be one of {allowed}", {"allowed": list(allowed)})
        return value

    return check


def _year_rule(schema: DataSchema) -> ColumnRule:
    """The release year's range: the four-digit years the release-date column's pattern accepts."""
    pattern = schema.column(RELEASE_DATE_COLUMN).pattern
    if not pattern:
        return ColumnRule(name="year", dtype="int", nullable=False)
    compiled = re.compile(pattern)
    years = [year for year in range(1000, 10000) if compiled.fullmatch(str(year))]
    if not years:
        return ColumnRule(name="year", dtype="int", nullable=False)
    if len(years) != years[-1] - years[0] + 1:
        return ColumnRule(name="year", dtype="int", nullable=False, allowed=tuple(years))
    return ColumnRule(name="year", dtype="int", nullable=False, min=years[0], max=years[-1])


# --------------------------------------------------------------------------- responses


class RecommendedTrack(BaseModel):
    rank: int
    track_id: str
    track_name: str | None
    track_artist: str | None
    genre: str
    score: float = Field(description="The model's estimate that the track belongs in the playlist.")
    spotify_url: str


class RecommendResponse(BaseModel):
    request_id: str
    model_version: str
    k: int
    recommendations: list[RecommendedTrack]
    unknown_track_ids: list[str] = Field(description="Ids of the request the catalog does not know.")


class PlaylistRecommendations(BaseModel):
    request_id: str
    playlist_id: str
    model_version: str
    k: int
    source: str = Field(
        description="batch: precomputed by songrec batch for this model version; live: scored now."
    )
    batch_run_id: str | None = Field(description="The batch run the list comes from (source batch).")
    recommendations: list[RecommendedTrack]


class Prediction(BaseModel):
    input: Literal["track_ids", "tracks"] = Field(
        description="Which list of the request the track came from."
    )
    index: int = Field(description="The track's position in that list.")
    track_id: str | None = Field(description="The catalog id (null for a track given by its features).")


class GenrePrediction(Prediction):
    genre: str
    probabilities: dict[str, float]


class PopularityPrediction(Prediction):
    popularity: float = Field(description="Predicted Spotify popularity, 0 to 100.")


class GenreResponse(BaseModel):
    request_id: str
    model_version: str
    genres: list[str]
    predictions: list[GenrePrediction]
    unknown_track_ids: list[str]


class PopularityResponse(BaseModel):
    request_id: str
    model_version: str
    predictions: list[PopularityPrediction]
    unknown_track_ids: list[str]


class TrackSummary(BaseModel):
    track_id: str
    track_name: str | None
    track_artist: str | None
    track_album_name: str | None
    year: int | None
    popularity: int | None
    genre: str
    spotify_url: str


class SearchResponse(BaseModel):
    query: str
    model_version: str
    tracks: list[TrackSummary]


class FeedbackResponse(BaseModel):
    status: Literal["accepted", "duplicate"] = Field(
        description="duplicate: this event on this track of the request was stored before (not again)."
    )
    request_id: str
    track_id: str
    event: str


class HealthResponse(BaseModel):
    status: Literal["ok"]


class ReadyResponse(BaseModel):
    status: Literal["ready"]
    model_version: str = Field(description="The version serving now.")
    champion_version: str | None = Field(
        description="The version the registry names (null when the registry cannot be read)."
    )
    stale: bool = Field(description="True while the champion is not the version serving (it failed to load).")
    problem: str | None = Field(description="What keeps the champion from serving, if anything.")
    model_source: str = Field(description="registry (the champion) or file (a local bundle).")
    model_uri: str
    loaded_at: datetime
    catalog_tracks: int
    recommender: str
    max_per_artist: int | None = Field(
        description="The model's default diversity setting for /recommend (null: no cap)."
    )
    memory_mib: float | None = Field(
        description="The serving process's resident memory now, in MiB (null where the OS does not say)."
    )


class ReloadResponse(BaseModel):
    swapped: bool
    model_version: str
    previous_version: str | None


class ErrorItem(BaseModel):
    loc: list[str | int] = Field(description="Where the problem is: body, query or header, then the field.")
    msg: str
    type: str


class ErrorResponse(BaseModel):
    """Every 4xx and 5xx: a one-line message naming the field and the problem, then the details."""

    message: str
    detail: list[ErrorItem]
    unknown_track_ids: list[str] | None = None
