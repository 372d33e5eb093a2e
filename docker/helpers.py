"""Small jobs of the songrec image's entrypoint (docker/entrypoint.sh), in Python for the quoting.

    python docker/helpers.py passwords-file     write Airflow's simple-auth password file from env
    python docker/helpers.py buckets B [B ...]  create S3 buckets (MinIO in compose) if missing
    python docker/helpers.py wait-champion      wait until the registry has a `champion` version
    python docker/helpers.py http URL           exit 0 when URL answers 2xx (container healthchecks)

Standard library plus what the image already has (boto3, mlflow, songrec); no secret is printed.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def say(message: str) -> None:
    print(f"songrec-entrypoint: {message}", file=sys.stderr, flush=True)


def passwords_file() -> int:
    """{"<user>": "<password>"} for the users of AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS."""
    password = os.environ.get("AIRFLOW_ADMIN_PASSWORD", "")
    if not password:
        say("AIRFLOW_ADMIN_PASSWORD is not set: Airflow generates a password and logs it")
        return 0
    home = Path(os.environ.get("AIRFLOW_HOME", "/opt/airflow"))
    path = Path(
        os.environ.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE") or home / "passwords.json"
    )
    users = os.environ.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin")
    names = [entry.split(":", 1)[0].strip() for entry in users.split(",") if entry.strip()]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    tmp.write_text(json.dumps(dict.fromkeys(names, password)))
    tmp.replace(path)
    say(f"Airflow login for {', '.join(names)}: the password in AIRFLOW_ADMIN_PASSWORD ({path})")
    return 0


def buckets(names: list[str]) -> int:
    """Create each bucket unless it exists (AWS_ENDPOINT_URL points boto3 at MinIO or moto)."""
    import boto3
    from botocore.exceptions import ClientError

    s3 = boto3.client("s3", region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    for name in names:
        try:
            s3.head_bucket(Bucket=name)
            say(f"bucket {name} exists")
        except ClientError:
            s3.create_bucket(Bucket=name)
            say(f"bucket {name} created")
    return 0


def wait_champion() -> int:
    """Block until the registered model has a `champion` alias (the API cannot start without a
    model); a local MLflow store needs no wait, the API falls back to the local bundle there."""
    from songrec.config.manager import ConfigurationManager
    from songrec.tracking.registry import CHAMPION, version_by_alias
    from songrec.tracking.setup import redact

    config = ConfigurationManager().serve().tracking
    if config.backend == "local":
        return 0
    import mlflow

    if config.backend == "dagshub" and config.password:
        os.environ["MLFLOW_TRACKING_USERNAME"] = config.username or ""
        os.environ["MLFLOW_TRACKING_PASSWORD"] = config.password
    mlflow.set_tracking_uri(config.uri)
    mlflow.set_registry_uri(config.uri)
    poll = float(os.environ.get("SONGREC_CHAMPION_POLL_SECONDS", "15"))
    timeout = float(os.environ.get("SONGREC_CHAMPION_WAIT_SECONDS", "0"))  # 0: wait for ever
    started = time.monotonic()
    last = ""
    while True:
        try:
            found = version_by_alias(config.registered_model, CHAMPION)
            state = f"{config.registered_model} has no {CHAMPION!r} alias yet"
        except Exception as exc:  # the registry is not up yet
            found, state = None, f"registry {redact(config.uri)} unavailable ({type(exc).__name__})"
        if found is not None:
            say(f"{config.registered_model}@{CHAMPION} is version {found.version}")
            return 0
        if state != last:
            say(f"waiting for a model to serve: {state}; trigger the songrec_training DAG in Airflow")
            last = state
        if timeout and time.monotonic() - started > timeout:
            say(f"no champion after {timeout:.0f} s")
            return 1
        time.sleep(poll)


def http(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return 0 if 200 <= response.status < 300 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    command, args = argv[0], argv[1:]
    if command == "passwords-file":
        return passwords_file()
    if command == "buckets":
        return buckets(args)
    if command == "wait-champion":
        return wait_champion()
    if command == "http" and len(args) == 1:
        return http(args[0])
    print(f"unknown command {' '.join(argv)!r}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
