"""songrec batch: playlists and tracks scored offline, idempotent and atomic, local, S3 and PostgreSQL."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from songrec.config.manager import ConfigurationManager
from songrec.config.stage_configs import BatchConfig
from songrec.models.bundle import SongrecBundle
from songrec.models.catalog_view import CatalogView
from songrec.scoring.batch import run_batch
from songrec.scoring.batch_io import BatchInputError
from songrec.serving.app import create_app
from tests.conftest import free_port, run_cli
from tests.serving.conftest import MemorySource


@pytest.fixture
def config(trained_project: Path, tmp_path: Path) -> BatchConfig:
    base = ConfigurationManager(trained_project).batch()
    return dataclasses.replace(
        base, output_dir=tmp_path / "batch", event_store_url=f"sqlite:///{tmp_path / 'events.db'}"
    )


def test_the_catalog_playlists_get_the_apis_recommendations(
    config: BatchConfig, bundle_file: Path, bundle: SongrecBundle
) -> None:
    report = run_batch(config, "recommend", bundle_file=bundle_file, k=7)
    memberships = pd.read_parquet(config.memberships)
    out = pd.read_parquet(report.output)
    assert report.items == memberships["playlist_id"].nunique() == out["playlist_id"].nunique()
    assert len(out) == report.output_rows == 7 * report.items
    assert set(out["model_version"]) == {report.model_version} and set(out["batch_run_id"]) == {
        report.batch_run_id
    }
    # One playlist, compared with what the API's CatalogView answers for the same tracks.
    playlist = memberships["playlist_id"].iloc[0]
    view = CatalogView(bundle)
    expected = view.recommend(
        view.resolve(memberships.loc[memberships["playlist_id"] == playlist, "track_id"]), [], 7
    )
    got = out[out["playlist_id"] == playlist].sort_values("rank")
    assert got["track_id"].tolist() == [t["track_id"] for t in expected.tracks]
    assert not any(
        set(got["track_id"]) & set(memberships.loc[memberships["playlist_id"] == playlist, "track_id"])
    )
    # Two worker processes and small chunks (playlists cut at chunk ends): the same rows, in order.
    parallel = run_batch(
        config, "recommend", output=str(config.output_dir / "parallel.parquet"), bundle_file=bundle_file,
        k=7, workers=2, chunk_rows=97,
    )  # fmt: skip
    pd.testing.assert_frame_equal(pd.read_parquet(parallel.output), out)


def test_a_rerun_writes_the_same_file_and_never_half_of_one(config: BatchConfig, bundle_file: Path) -> None:
    first = run_batch(config, "recommend", bundle_file=bundle_file, k=5)
    before = Path(first.output).read_bytes()
    again = run_batch(config, "recommend", bundle_file=bundle_file, k=5)
    assert again.batch_run_id == first.batch_run_id and Path(again.output).read_bytes() == before
    # A run that dies mid-way (here: a chunk of another shape) leaves the last good file alone.
    broken = Path(config.output_dir) / "broken.csv"
    broken.write_text("playlist_id,track_id\np1,unknown\n")
    with pytest.raises(BatchInputError, match="no row could be scored .*no track the model knows"):
        run_batch(config, "recommend", str(broken), first.output, bundle_file=bundle_file, k=5)
    assert Path(first.output).read_bytes() == before
    assert [p.name for p in Path(first.output).parent.iterdir()] == [Path(first.output).name]


def test_tracks_by_id_and_by_features_match_the_bundle(
    config: BatchConfig, bundle_file: Path, bundle: SongrecBundle, tmp_path: Path
) -> None:
    catalog = bundle.catalog.iloc[:60]
    ids = tmp_path / "ids.csv"
    pd.DataFrame({"track_id": [*catalog["track_id"], "not-a-track"]}).to_csv(ids, index=False)
    genre = run_batch(config, "genre", str(ids), str(tmp_path / "genre.parquet"), bundle_file=bundle_file)
    assert genre.skipped == {"rows with a track_id the catalog does not know": 1} and genre.items == 60
    out = pd.read_parquet(genre.output)
    assert out["genre"].tolist() == bundle.predict_genre(catalog)["genre"].tolist()

    features = catalog[list(bundle.numeric_features)].copy()
    features.iloc[2, 0] = np.nan
    rows = tmp_path / "rows.parquet"
    features.to_parquet(rows)
    popularity = run_batch(
        config, "popularity", str(rows), str(tmp_path / "p.parquet"), bundle_file=bundle_file
    )
    first = bundle.numeric_features[0]
    assert popularity.skipped == {f"rows with {first} missing or not a number": 1}
    out = pd.read_parquet(popularity.output)
    assert out["row"].tolist() == [i for i in range(60) if i != 2]
    np.testing.assert_allclose(
        out["popularity"], bundle.predict_popularity(features.drop(index=features.index[2]))
    )


def test_wrong_columns_and_empty_files_are_clear_errors(
    config: BatchConfig, bundle_file: Path, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("name,artist\nYesterday,The Beatles\n")
    with pytest.raises(BatchInputError, match="needs a track_id column or every feature column"):
        run_batch(config, "genre", str(wrong), bundle_file=bundle_file)
    with pytest.raises(BatchInputError, match="needs the column.* playlist_id"):
        run_batch(config, "recommend", str(wrong), bundle_file=bundle_file)
    empty = tmp_path / "empty.csv"
    empty.write_text("track_id\n")
    with pytest.raises(BatchInputError, match="has no rows"):
        run_batch(config, "genre", str(empty), bundle_file=bundle_file)
    with pytest.raises(BatchInputError, match="no such file"):
        run_batch(config, "genre", str(tmp_path / "missing.parquet"), bundle_file=bundle_file)


def test_s3_in_and_out_and_the_postgresql_table(
    config: BatchConfig, bundle_file: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    boto3 = pytest.importorskip("boto3")
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        for name, value in {
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            monkeypatch.setenv(name, value)
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="scores")
        s3.upload_file(str(config.memberships), "scores", "in/playlists.parquet")
        on_s3 = dataclasses.replace(config, s3_endpoint_url=endpoint, event_store_url=postgres_url)
        report = run_batch(
            on_s3, "recommend", "s3://scores/in/playlists.parquet", "s3://scores/out/recs.parquet",
            bundle_file=bundle_file, k=3,
        )  # fmt: skip
        assert report.table == "batch_recommendations"
        keys = [item["Key"] for item in s3.list_objects_v2(Bucket="scores")["Contents"]]
        assert keys == ["in/playlists.parquet", "out/recs.parquet"]
        run_batch(
            on_s3, "recommend", "s3://scores/in/playlists.parquet", "s3://scores/out/recs.parquet",
            bundle_file=bundle_file, k=3,
        )  # fmt: skip
        engine = create_engine(postgres_url)
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT count(*), count(DISTINCT batch_run_id), min(model_version)"
                    " FROM batch_recommendations"
                )
            ).one()
        engine.dispose()
        assert tuple(rows) == (report.output_rows, 1, report.model_version)  # the rerun replaced its rows
    finally:
        server.stop()


def test_the_api_answers_known_playlists_from_the_batch_then_live(
    config: BatchConfig, bundle_file: Path, bundle: SongrecBundle
) -> None:
    serve = dataclasses.replace(
        config.serve,
        batch_dir=config.output_dir,
        event_store_url=config.event_store_url,
    )
    playlist = str(pd.read_parquet(config.memberships)["playlist_id"].iloc[3])
    for served_version, expected in (("batch-version", "batch"), ("another", "live")):
        app = create_app(serve, model_source=MemorySource({served_version: bundle}, served_version))
        with TestClient(app) as client:
            if served_version == "batch-version":
                assert client.get(f"/playlists/{playlist}/recommendations").status_code == 404  # no batch yet
                run_batch(config, "recommend", bundle_file=bundle_file, run_id="r1")
                manifest = config.output_dir / "recommend-latest.json"
                _retag(manifest, "batch-version")
            answer = client.get(f"/playlists/{playlist}/recommendations", params={"k": 4})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["source"] == expected and body["model_version"] == served_version
            assert [t["rank"] for t in body["recommendations"]] == [1, 2, 3, 4]
            assert client.get("/playlists/nope/recommendations").status_code == 404
            assert "/playlists/{playlist_id}/recommendations" in client.get("/openapi.json").json()["paths"]
        if served_version == "batch-version":
            batch_ids = [t["track_id"] for t in body["recommendations"]]
    assert [t["track_id"] for t in body["recommendations"]] == batch_ids  # same model: same list, live


def _retag(manifest: Path, version: str) -> None:
    """Name the batch's model version as the test's model source names the same bundle."""
    import json

    data = json.loads(manifest.read_text())
    data["model_version"] = version
    manifest.write_text(json.dumps(data))


def test_the_command_prints_a_summary(trained_project: Path, tmp_path: Path, bundle_file: Path) -> None:
    out = tmp_path / "recs.parquet"
    result = run_cli(
        "songrec",
        "batch",
        "recommend",
        "--bundle",
        str(bundle_file),
        "--output",
        str(out),
        cwd=trained_project,
    )
    assert "playlists scored with model version file-" in result.stdout and out.exists()
    bad = run_cli("songrec", "batch", "genre", cwd=trained_project, check=False)
    assert bad.returncode == 1 and "needs --input" in bad.stderr
