"""CatalogView's answers against independent expectations, the pyfunc's recommendations as a
frame, and the request contract following the data contract."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from songrec.config.stage_configs import ServeConfig
from songrec.contract.schema import ColumnRule, DataSchema
from songrec.models.bundle import SongrecBundle
from songrec.models.catalog_view import SPOTIFY_TRACK_URL, CatalogView, FeatureRow, RecommendAnswer
from songrec.models.pyfunc import RECOMMENDATION_COLUMNS, SongrecPyfunc, recommendations_frame
from songrec.models.recommender.base import Playlist, top_k
from songrec.models.recommender.hybrid import HybridRecommender
from songrec.serving.schemas import build_request_models
from tests.serving.conftest import feature_row, playlist_ids

UNKNOWN_ID = "0000000000000000000000"


@pytest.fixture(scope="module")
def view(bundle: SongrecBundle) -> CatalogView:
    return CatalogView(bundle)


def _values(bundle: SongrecBundle, row: dict[str, object]) -> list[float]:
    return [float(row[name]) for name in bundle.numeric_features]  # type: ignore[arg-type]


def _feature_rows(bundle: SongrecBundle, rows: list[dict[str, object]]) -> list[FeatureRow]:
    return [FeatureRow(_values(bundle, r), r["track_artist"]) for r in rows]  # type: ignore[arg-type]


def _expected_recommendations(
    bundle: SongrecBundle, track_ids: list[str], rows: list[dict[str, object]], k: int
) -> tuple[pd.DataFrame, list[str]]:
    """The answer built from the recommender's scores alone: top_k over score(), the fitted
    chance rounded to 6 decimals, and the catalog's columns at those positions."""
    recommender = bundle.recommender
    assert isinstance(recommender, HybridRecommender)
    positions, unknown = bundle.positions_of(track_ids)
    playlist = Playlist(positions=positions)
    if rows:
        playlist = Playlist(
            positions=positions,
            extra_features=np.array([_values(bundle, r) for r in rows]),
            extra_artists=tuple(r["track_artist"] for r in rows),  # type: ignore[misc]
            extra_years=np.array([float(r["year"]) for r in rows]),  # type: ignore[arg-type]
        )
    scores = recommender.score(playlist)
    best = top_k(scores, k, exclude=positions)
    chosen = bundle.catalog.iloc[best]
    expected = pd.DataFrame(
        {
            "rank": np.arange(1, len(best) + 1),
            "track_id": chosen["track_id"].tolist(),
            "track_name": chosen["track_name"].tolist(),
            "track_artist": chosen["track_artist"].tolist(),
            "genre": [str(g) for g in bundle.display_genre[best]],
            "score": np.round(recommender.probability(scores[best]), 6),
            "spotify_url": [f"https://open.spotify.com/track/{t}" for t in chosen["track_id"]],
        }
    )
    return expected, unknown


@pytest.mark.parametrize("offset", [0, 3, 7])
def test_recommendations_are_the_top_k_of_the_scores(
    bundle: SongrecBundle, view: CatalogView, offset: int
) -> None:
    ids = [*playlist_ids(bundle, size=6, offset=offset), UNKNOWN_ID]
    rows = [feature_row(bundle, 10 + offset), feature_row(bundle, 20 + offset, track_artist=None)]
    for track_ids, feature_rows in ((ids, []), ([], rows), (ids, rows)):
        expected, unknown = _expected_recommendations(bundle, track_ids, feature_rows, k=25)
        # No diversity cap: the plain top k (tests/models/test_diversity.py checks the cap).
        answer = view.recommend(
            view.resolve(track_ids), _feature_rows(bundle, feature_rows), k=25, max_per_artist=10
        )
        assert len(answer.tracks) == 25
        pd.testing.assert_frame_equal(pd.DataFrame(answer.tracks), expected, check_exact=True)
        assert answer.unknown_track_ids == unknown == ([UNKNOWN_ID] if track_ids else [])


def test_search_is_a_filter_of_the_catalog_most_popular_first(
    bundle: SongrecBundle, view: CatalogView
) -> None:
    catalog = bundle.catalog
    names = catalog["track_name"].fillna("").str.lower()
    artists = catalog["track_artist"].fillna("").str.lower()
    artist = str(catalog["track_artist"].value_counts().index[1])
    for query in ("a", "the", artist[:4], artist.upper(), " love ", "zzzzqqq", "", "  "):
        needle = query.strip().lower()
        hits = catalog[names.str.contains(needle, regex=False) | artists.str.contains(needle, regex=False)]
        ranked = hits.sort_values(["popularity", "track_id"], ascending=[False, True])["track_id"]
        for limit in (0, 15):
            expected = ranked.head(limit).tolist() if needle else []
            assert [view.track_ids[p] for p in view.search(query, limit)] == expected, (query, limit)
    assert len(view.search("a", 15)) == 15  # more hits than the limit: the cut, so the order, is tested


def test_the_pyfunc_recommends_as_the_view_does(
    bundle_file: Path, bundle: SongrecBundle, view: CatalogView
) -> None:
    model = SongrecPyfunc()
    model.load_context(SimpleNamespace(artifacts={"bundle": str(bundle_file)}))
    ids = playlist_ids(bundle, size=5)
    rows = [feature_row(bundle, 10), feature_row(bundle, 20, track_artist=None)]
    # Known ids by id; an unknown id with features and rows without an id by their features.
    frame = pd.DataFrame([{"track_id": i} for i in ids] + [{**rows[0], "track_id": UNKNOWN_ID}, rows[1]])
    got = model.predict(None, frame, {"task": "recommend", "k": 12})
    answer = view.recommend(view.resolve(ids), _feature_rows(bundle, rows), k=12)
    pd.testing.assert_frame_equal(got, pd.DataFrame(answer.tracks), check_exact=True)
    assert got["rank"].dtype == np.int64 and got["score"].dtype == np.float64
    assert got["spotify_url"].tolist() == [SPOTIFY_TRACK_URL.format(t) for t in got["track_id"]]
    with pytest.raises(ValueError, match="k must be a whole number from 1 to"):
        model.predict(None, frame, {"task": "recommend", "k": 0})
    empty = recommendations_frame(RecommendAnswer(tracks=[], unknown_track_ids=[]))
    assert list(empty.columns) == list(RECOMMENDATION_COLUMNS) and empty.empty
    assert empty["rank"].dtype == np.int64 and empty["score"].dtype == np.float64


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
