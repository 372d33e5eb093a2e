"""The request path's answers equal the bundle's; the request contract follows the data contract."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from songrec.config.stage_configs import ServeConfig
from songrec.contract.schema import ColumnRule, DataSchema
from songrec.core.errors import ConfigError
from songrec.models.bundle import SongrecBundle
from songrec.models.catalog_view import CatalogView, FeatureRow
from songrec.serving.schemas import build_request_models
from songrec.serving.settings import ServingSettings
from tests.serving.conftest import feature_row, playlist_ids


@pytest.fixture(scope="module")
def view(bundle: SongrecBundle) -> CatalogView:
    return CatalogView(bundle)


def _rows_frame(bundle: SongrecBundle, rows: list[dict[str, object]]) -> pd.DataFrame:
    return pd.DataFrame(rows)[[*bundle.numeric_features, "track_artist"]]


@pytest.mark.parametrize("offset", [0, 3, 7])
def test_recommendations_equal_the_bundles(bundle: SongrecBundle, view: CatalogView, offset: int) -> None:
    ids = [*playlist_ids(bundle, size=6, offset=offset), "0000000000000000000000"]
    rows = [feature_row(bundle, 10 + offset), feature_row(bundle, 20 + offset, track_artist=None)]
    for track_ids, feature_rows in ((ids, []), ([], rows), (ids, rows)):
        expected = bundle.recommend(
            track_ids, _rows_frame(bundle, feature_rows) if feature_rows else None, k=25
        )
        resolved = view.resolve(track_ids)
        answer = view.recommend(
            resolved,
            [
                FeatureRow([float(r[n]) for n in bundle.numeric_features], r["track_artist"])
                for r in feature_rows
            ],  # type: ignore[arg-type]
            k=25,
        )
        got = pd.DataFrame(answer.tracks)
        pd.testing.assert_frame_equal(
            got[list(expected.tracks.columns)], expected.tracks, check_dtype=False, check_exact=True
        )
        assert answer.unknown_track_ids == expected.unknown_track_ids


def test_search_equals_the_bundles(bundle: SongrecBundle, view: CatalogView) -> None:
    artist = str(bundle.catalog["track_artist"].value_counts().index[1])
    for query in ("a", "the", artist[:4], artist.upper(), " love ", "zzzzqqq", ""):
        expected = bundle.search(query, limit=15)["track_id"].tolist()
        assert [view.track_ids[p] for p in view.search(query, 15)] == expected, query


def test_duplicate_ids_count_once_and_keep_their_first_position(
    view: CatalogView, bundle: SongrecBundle
) -> None:
    a, b = playlist_ids(bundle, size=2)
    resolved = view.resolve([b, "0000000000000000000000", a, b])
    assert [view.track_ids[p] for p in resolved.positions] == [b, a]
    assert resolved.indexes == [0, 2]
    assert resolved.unknown == ["0000000000000000000000"]
    assert np.array_equal(resolved.positions, bundle.positions_of([b, a])[0])


def _schema_with(schema: DataSchema, **rules: ColumnRule) -> DataSchema:
    columns = tuple(rules.get(rule.name, rule) for rule in schema.columns)
    return dataclasses.replace(schema, columns=columns)


def test_feature_ranges_come_from_the_data_contract(base_config: ServeConfig) -> None:
    schema = base_config.schema
    narrower = _schema_with(
        schema,
        energy=ColumnRule("energy", "float", False, min=0.2, max=0.4),
        track_album_release_date=ColumnRule(
            "track_album_release_date", "str", False, pattern=r"20[12]\d(-\d{2}){0,2}"
        ),
    )
    models = build_request_models(narrower, base_config)
    properties = models.track_features.model_json_schema()["properties"]
    assert (properties["energy"]["minimum"], properties["energy"]["maximum"]) == (0.2, 0.4)
    assert (properties["year"]["minimum"], properties["year"]["maximum"]) == (2010, 2029)
    row = {name: 1 for name in models.feature_names} | {
        "energy": 0.5,
        "year": 2009,
        "tempo": 100.0,
        "mode": 1,
    }
    with pytest.raises(ValidationError) as raised:
        models.track_features.model_validate(row)
    failed = {error["loc"][0] for error in raised.value.errors()}
    assert {"energy", "year"} <= failed


def test_limits_come_from_the_serve_config(base_config: ServeConfig) -> None:
    config = dataclasses.replace(base_config, max_k=3, default_k=2, max_playlist_tracks=2)
    models = build_request_models(config.schema, config)
    assert models.recommend.model_validate({"track_ids": ["0" * 22]}).k == 2
    with pytest.raises(ValidationError, match="less than or equal to 3"):
        models.recommend.model_validate({"track_ids": ["0" * 22], "k": 4})
    with pytest.raises(ValidationError, match="at most 2"):
        models.recommend.model_validate({"track_ids": ["0" * 22] * 3})


def test_serving_settings_from_the_environment(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert ServingSettings.from_environ({}) == ServingSettings(bundle=None, event_logging=True)
    assert not ServingSettings.from_environ({"SONGREC_EVENT_LOGGING": "off"}).event_logging
    with pytest.raises(ConfigError, match="SONGREC_EVENT_LOGGING = 'maybe'"):
        ServingSettings.from_environ({"SONGREC_EVENT_LOGGING": "maybe"})
    assert ServingSettings.from_environ({"SONGREC_EVENT_HOLD_SECONDS": "0"}).event_hold_seconds == 0
    for wrong in ("soon", "-1", "nan", "7200"):
        with pytest.raises(ConfigError, match=f"SONGREC_EVENT_HOLD_SECONDS = '{wrong}': must be a number"):
            ServingSettings.from_environ({"SONGREC_EVENT_HOLD_SECONDS": wrong})
    with pytest.raises(ConfigError, match="SONGREC_BUNDLE = .*no such file"):
        ServingSettings.from_environ({"SONGREC_BUNDLE": str(tmp_path / "missing.joblib")})
    file = tmp_path / "b.joblib"
    file.write_bytes(b"x")
    assert ServingSettings.from_environ({"SONGREC_BUNDLE": str(file)}).bundle == file.resolve()
