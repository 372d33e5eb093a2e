"""Reading a path or URL (file://, http(s)://, s3://) and listing a folder or S3 prefix.

The one place that knows how to reach an S3-compatible store (its endpoint comes from the
environment, config.environment), shared by ingestion, retraining and the label export.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

from tqdm import tqdm

from songrec.core.errors import IngestionError

CHUNK_BYTES = 1 << 20


def fetch_url(source: str, s3_endpoint_url: str | None, timeout: float) -> bytes:
    """Read a path or file://, http(s):// or s3:// URL; any failure names the URL."""
    try:
        if source.startswith(("http://", "https://")):
            return _fetch_http(source, timeout)
        return _fetch_fsspec(source, s3_endpoint_url, timeout)
    except IngestionError:
        raise
    except Exception as exc:
        raise IngestionError(f"cannot read {source}: {type(exc).__name__}: {exc}") from exc


def _fetch_http(url: str, timeout: float) -> bytes:
    import requests

    with requests.get(url, stream=True, timeout=timeout) as response:
        if response.status_code >= 400:
            raise IngestionError(f"cannot read {url}: HTTP {response.status_code} {response.reason}")
        total = int(response.headers.get("content-length") or 0) or None
        return _read_chunks(response.iter_content(CHUNK_BYTES), total, url)


def filesystem_options(url: str, s3_endpoint_url: str | None, timeout: float | None = None) -> dict[str, Any]:
    """fsspec's options for `url`: for s3://, the endpoint (MinIO, moto) and the timeouts."""
    if not url.startswith("s3://"):
        return {}
    options: dict[str, Any] = {}
    if timeout is not None:
        options["config_kwargs"] = {
            "connect_timeout": timeout,
            "read_timeout": timeout,
            "retries": {"max_attempts": 2},
        }
    if s3_endpoint_url:
        options["client_kwargs"] = {"endpoint_url": s3_endpoint_url}
    return options


def filesystem(url: str, s3_endpoint_url: str | None) -> tuple[Any, str]:
    """The fsspec file system holding `url`, and the path within it."""
    import fsspec

    return fsspec.core.url_to_fs(url, **filesystem_options(url, s3_endpoint_url))


def _fetch_fsspec(source: str, s3_endpoint_url: str | None, timeout: float) -> bytes:
    import fsspec

    with fsspec.open(source, "rb", **filesystem_options(source, s3_endpoint_url, timeout)) as handle:
        total = getattr(handle, "size", None)
        return _read_chunks(_iter_file(handle), total, source)


def _iter_file(handle: IO[bytes]) -> Iterator[bytes]:
    while chunk := handle.read(CHUNK_BYTES):
        yield chunk


def _read_chunks(chunks: Any, total: int | None, source: str) -> bytes:
    buffer = bytearray()
    name = source.rsplit("/", 1)[-1]
    with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {name}", disable=None) as bar:
        for chunk in chunks:
            buffer.extend(chunk)
            bar.update(len(chunk))
    return bytes(buffer)
