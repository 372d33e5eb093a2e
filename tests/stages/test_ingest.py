"""ingest: formats, sources, checksums and failures that leave the last good raw data."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import re
import shutil
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from songrec.config.manager import ConfigurationManager
from songrec.core.errors import IngestionError
from songrec.stages import ingest
from tests.conftest import edit_yaml, free_port, make_project


@pytest.fixture
def small_csv(sample_frame: pd.DataFrame) -> bytes:
    return sample_frame.head(50).to_csv(index=False).encode()


def use_source(project: Path, source: str, sha256: str | None = None) -> ConfigurationManager:
    edit_yaml(project / "config" / "config.yaml", {"ingest.source": source, "ingest.sha256": sha256})
    return ConfigurationManager(project)


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def parquet_of(csv: bytes) -> bytes:
    buffer = io.BytesIO()
    pd.read_csv(io.BytesIO(csv)).to_parquet(buffer, index=False)
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["csv", "csv.gz", "zip", "parquet"])
def test_reads_every_format_and_writes_a_record(project: Path, small_csv: bytes, kind: str) -> None:
    payload = {
        "csv": small_csv,
        "csv.gz": gzip.compress(small_csv),
        "zip": zipped({"songs.csv": small_csv}),
        "parquet": parquet_of(small_csv),
    }[kind]
    path = project / "data" / "source" / f"songs.{kind}"
    path.write_bytes(payload)
    manager = use_source(project, f"file://{path}", hashlib.sha256(payload).hexdigest())
    ingest.run(manager)
    raw = pd.read_parquet(manager.ingest().raw_tracks)
    record = json.loads(manager.ingest().record.read_text())
    assert len(raw) == 50 == record["rows"]
    assert record["sha256"] == hashlib.sha256(payload).hexdigest()
    assert record["source"] == f"file://{path}"  # a URL is recorded as configured
    assert {"source", "sha256", "rows", "columns", "additions"} <= set(record)


def test_the_record_is_the_same_bytes_in_any_clone_at_any_time(
    tmp_path: Path, sample_frame: pd.DataFrame
) -> None:
    """ingestion.json is a DVC output: two clones (other folders, other times) that ingest the
    same source must write the same bytes, or every `make run` would change dvc.lock."""
    first = make_project(tmp_path / "one", sample_frame)
    second = shutil.copytree(first, tmp_path / "two")  # the same source bytes (gzip holds a time)
    records = []
    for clone in (first, second):
        manager = ConfigurationManager(clone)
        ingest.run(manager)
        records.append(manager.ingest().record.read_text())
    assert records[0] == records[1]
    assert json.loads(records[0])["source"] == "data/source/spotify_songs.csv.gz"  # relative to the root
    assert str(tmp_path) not in records[0]
    assert not re.search(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}", records[0])  # no time of ingestion


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "is empty"),
        (gzip.compress(b"track_id,track_name\n" * 500)[:40], "not a readable gzip file"),
        (zipped({"readme.txt": b"no data here"}), "must hold exactly one .csv file, found 0"),
        (b"track_id,track_name\n", "has a header but no rows"),
        (parquet_of(b"track_id,track_name\nt1,a\n")[:-100], "not a whole Parquet file"),
        (parquet_of(b"track_id,track_name\nt1,a\n")[:60] + b"PAR1", "not a readable Parquet file"),
        (parquet_of(b"track_id,track_name\n"), "has columns but no rows"),
    ],
    ids=[
        "empty",
        "truncated-gzip",
        "zip-without-csv",
        "header-only",
        "cut-parquet",
        "bad-parquet",
        "no-rows",
    ],
)
def test_unreadable_sources_fail_clearly(project: Path, payload: bytes, message: str) -> None:
    path = project / "data" / "source" / "bad.bin"
    path.write_bytes(payload)
    with pytest.raises(IngestionError, match=message) as error:
        ingest.run(use_source(project, str(path)))
    assert str(path) in str(error.value)


def test_a_csv_cut_mid_row_is_refused_not_read_as_empty_values(project: Path, small_csv: bytes) -> None:
    path = project / "data" / "source" / "cut.csv"
    whole = project / "data" / "source" / "whole.csv"
    whole.write_bytes(small_csv.rstrip(b"\n"))  # no final line break, but a whole row: fine
    assert ingest.run(use_source(project, str(whole)))["rows"] == 50
    path.write_bytes(small_csv[: small_csv.rstrip(b"\n").rfind(b",", 0, -40)])  # the last row cut short
    with pytest.raises(IngestionError, match=r"cut.csv ends in the middle of a row: line 51 has \d+ of"):
        ingest.run(use_source(project, str(path)))


def test_wrong_sha256_fails_and_keeps_the_previous_raw_data(project: Path) -> None:
    manager = ConfigurationManager(project)
    ingest.run(manager)
    before = manager.ingest().raw_tracks.read_bytes()
    record_before = manager.ingest().record.read_text()
    with pytest.raises(IngestionError, match="sha256 mismatch .* expected 0{64}, got [0-9a-f]{64}"):
        ingest.run(use_source(project, str(project / "data/source/spotify_songs.csv.gz"), "0" * 64))
    assert manager.ingest().raw_tracks.read_bytes() == before
    assert manager.ingest().record.read_text() == record_before
    assert not [p for p in manager.ingest().raw_dir.parent.iterdir() if p.name.endswith(".tmp")]


def test_unreachable_url_names_the_url(project: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/spotify_songs.csv.gz"
    with pytest.raises(IngestionError, match=f"cannot read {url}"):
        ingest.run(use_source(project, url))


@pytest.fixture
def http_folder(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    folder = tmp_path / "www"
    folder.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_http_source_with_checksum(project: Path, small_csv: bytes, http_folder: tuple[Path, str]) -> None:
    folder, base = http_folder
    payload = gzip.compress(small_csv)
    (folder / "songs.csv.gz").write_bytes(payload)
    manager = use_source(project, f"{base}/songs.csv.gz", hashlib.sha256(payload).hexdigest())
    assert ingest.run(manager)["rows"] == 50
    with pytest.raises(IngestionError, match="HTTP 404"):
        ingest.run(use_source(project, f"{base}/missing.csv.gz"))


def test_s3_source_through_moto_server(
    project: Path, small_csv: bytes, monkeypatch: pytest.MonkeyPatch
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
            "AWS_ENDPOINT_URL": endpoint,
        }.items():
            monkeypatch.setenv(name, value)
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="songs")
        payload = zipped({"data/songs.csv": small_csv})
        s3.put_object(Bucket="songs", Key="incoming/songs.zip", Body=payload)
        manager = use_source(project, "s3://songs/incoming/songs.zip", hashlib.sha256(payload).hexdigest())
        assert manager.ingest().s3_endpoint_url == endpoint
        assert ingest.run(manager)["rows"] == 50
        with pytest.raises(IngestionError, match="cannot read s3://songs/incoming/nothing.zip"):
            ingest.run(use_source(project, "s3://songs/incoming/nothing.zip"))
    finally:
        server.stop()
