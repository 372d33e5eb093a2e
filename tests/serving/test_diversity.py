"""/recommend's diversity setting: taken, checked, defaulted to the model's, shown by /ready."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient

from songrec.models.bundle import SongrecBundle
from songrec.models.recommender.diversity import artist_codes


def post(client: TestClient, body: dict[str, Any]) -> Any:
    return client.post("/recommend", content=json.dumps(body), headers={"content-type": "application/json"})


def one_artist_playlist(bundle: SongrecBundle) -> list[str]:
    """Five tracks of the catalog's most common artist: uncapped, its lists lean on that artist."""
    codes = artist_codes(bundle.catalog["track_artist"])
    top = int(np.bincount(codes[codes >= 0]).argmax())
    return bundle.catalog["track_id"].to_numpy()[codes == top][:5].tolist()


def test_max_per_artist_caps_each_artist_on_the_page(client: TestClient, bundle: SongrecBundle) -> None:
    seeds = one_artist_playlist(bundle)
    most = {}
    for cap in (1, 2, 10):
        response = post(client, {"track_ids": seeds, "k": 10, "max_per_artist": cap})
        assert response.status_code == 200, response.text
        artists = pd.Series([t["track_artist"] for t in response.json()["recommendations"]])
        assert artists.value_counts().max() <= cap
        most[cap] = int(artists.value_counts().max())
    assert most[1] == 1 and most[10] > 2  # the uncapped list is one artist deep, the capped is not


def test_left_out_it_is_the_models_default(client: TestClient, bundle: SongrecBundle) -> None:
    assert client.get("/ready").json()["max_per_artist"] == bundle.max_per_artist
    seeds = one_artist_playlist(bundle)
    default = post(client, {"track_ids": seeds, "k": 10}).json()["recommendations"]
    explicit = post(client, {"track_ids": seeds, "k": 10, "max_per_artist": bundle.max_per_artist or 10})
    assert [t["track_id"] for t in default] == [t["track_id"] for t in explicit.json()["recommendations"]]


def test_a_setting_out_of_range_is_a_422_naming_it(client: TestClient, bundle: SongrecBundle) -> None:
    seeds = one_artist_playlist(bundle)
    for bad in (0, 11, -1, 2.5, "2", True):
        response = post(client, {"track_ids": seeds, "max_per_artist": bad})
        assert response.status_code == 422, (bad, response.text)
        assert any(error["loc"] == ["body", "max_per_artist"] for error in response.json()["detail"]), bad
