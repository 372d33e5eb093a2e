"""End to end: `songrec airflow` runs a real scheduler and API server; the REST API v2 triggers
songrec_training with a token; the run succeeds, MLflow holds it, and DVC has nothing to redo.
Then Ctrl-C stops all of Airflow within 5 s; nothing listened beyond 127.0.0.1, and its secrets and
metadata DB are owner-only."""

from __future__ import annotations

import json
import os
import signal
import time
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

import pandas as pd
import pytest
import requests

from tests.conftest import BIN, free_port, run_cli
from tests.orchestration.airflow.conftest import dvc_project
from tests.services import process_group, wait_http

pytestmark = pytest.mark.slow


def processes_using(home: Path) -> list[int]:
    """Processes whose environment names this AIRFLOW_HOME."""
    marker = f"AIRFLOW_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def session_members(session: int) -> list[int]:
    """Processes of this session (setproctitle, as Airflow's API server uses, hides `environ`)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[3]) == session:
                found.append(int(entry.name))
    return found


def listening(pids: list[int]) -> dict[tuple[IPv4Address | IPv6Address, int], str]:
    """TCP sockets these processes listen on: (address, port) -> the listener's command line."""
    owners = {}
    for pid in pids:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    owners[target[8:-1]] = command
        except OSError:
            continue
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in owners:  # 0A: LISTEN
                address, port = fields[1].split(":")
                # /proc/net shows each 32-bit word of the address in host (little-endian) order
                words = [bytes.fromhex(address[i : i + 8])[::-1] for i in range(0, len(address), 8)]
                found[ip_address(b"".join(words)), int(port, 16)] = owners[fields[9]]
    return found


def test_rest_triggered_training_run(tmp_path: Path, sample_frame: pd.DataFrame) -> None:
    project = dvc_project(tmp_path / "project", sample_frame)
    home, port = tmp_path / "airflow_home", free_port()
    log = tmp_path / "songrec-airflow.log"
    command = ["songrec", "airflow", "--home", str(home), "--port", str(port)]
    started = time.monotonic()
    with process_group([str(BIN / command[0]), *command[1:]], log, cwd=project) as process:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/api/v2/monitor/health", process, log, timeout=240)
        deadline = time.monotonic() + 60
        while "login:" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.5)  # the pool is created right after the API is healthy
        print(f"Airflow ready after {time.monotonic() - started:.1f} s")
        password = json.loads((home / "passwords.json").read_text())["admin"]
        token = requests.post(
            f"{base}/auth/token", json={"username": "admin", "password": password}, timeout=30
        ).json()["access_token"]
        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {token}"
        dag_url = f"{base}/api/v2/dags/songrec_training"
        deadline = time.monotonic() + 120
        while api.get(dag_url, timeout=30).status_code != 200:  # the DAG processor parses it first
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1)
        assert api.patch(dag_url, json={"is_paused": False}, timeout=30).status_code == 200
        triggered = api.post(f"{dag_url}/dagRuns", json={"logical_date": None}, timeout=30)
        assert triggered.status_code == 200, triggered.text
        run_id = triggered.json()["dag_run_id"]
        deadline = time.monotonic() + 600
        while (state := api.get(f"{dag_url}/dagRuns/{run_id}", timeout=30).json()["state"]) not in (
            "success",
            "failed",
        ):
            assert time.monotonic() < deadline, "the run did not finish in 10 minutes"
            time.sleep(2)
        tasks = api.get(f"{dag_url}/dagRuns/{run_id}/taskInstances", timeout=30).json()["task_instances"]
        assert state == "success", {t["task_id"]: t["state"] for t in tasks}
        evaluate = api.get(
            f"{dag_url}/dagRuns/{run_id}/taskInstances/evaluate/xcomEntries/return_value", timeout=30
        ).json()["value"]
        # Task logs come from the home's log folder (no log server runs to serve them).
        logs = api.get(f"{dag_url}/dagRuns/{run_id}/taskInstances/evaluate/logs/1", timeout=30)
        assert logs.status_code == 200 and str(home / "logs") in logs.text, logs.text[:2000]
        # The home's own metadata DB, not the test's: no other DAG ran, the scheduled ones start paused.
        for other in ("songrec_retraining", "songrec_monitoring"):
            runs = api.get(f"{base}/api/v2/dags/{other}/dagRuns", timeout=30).json()
            assert runs["total_entries"] == 0, (other, runs)
            assert api.get(f"{base}/api/v2/dags/{other}", timeout=30).json()["is_paused"] is True

        # Only the API server listens, on 127.0.0.1: no log server (Airflow has no host option for them).
        (session,) = {os.getsid(pid) for pid in processes_using(home)}  # `songrec airflow` made it
        airflow = session_members(session)
        commands = " ".join(Path(f"/proc/{pid}/cmdline").read_bytes().decode() for pid in airflow)
        assert "scheduler" in commands and "triggerer" in commands, commands
        sockets = listening(airflow)
        assert (ip_address("127.0.0.1"), port) in sockets, sockets
        assert all(address.is_loopback for address, _ in sockets), sockets

        # Ctrl-C: the terminal sends SIGINT to songrec's process group; Airflow has a group of its own.
        assert session not in (process.pid, os.getpgid(process.pid))
        signalled = time.monotonic()
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=60)
        seconds = time.monotonic() - signalled
        output = log.read_text()
        print(f"`songrec airflow` exited {seconds:.2f} s after SIGINT:\n{output[-300:]}")
        assert seconds < 5, output[-2000:]
        assert "Airflow stopped after" in output, output[-2000:]
        with pytest.raises(ProcessLookupError):
            os.killpg(session, 0)  # not even a zombie is left of Airflow's group
        assert session_members(session) == []  # nor of its tasks' groups
    assert process.poll() is not None
    assert processes_using(home) == [], "Airflow processes outlived `songrec airflow`"
    for secret in ("passwords.json", "jwt_secret", "airflow.db"):
        assert (home / secret).stat().st_mode & 0o777 == 0o600, secret

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlruns' / 'mlflow.db'}")
    run = client.get_run(evaluate["run_id"] if isinstance(evaluate, dict) else json.loads(evaluate)["run_id"])
    assert run.info.status == "FINISHED"
    assert run_cli("dvc", "status", "-q", cwd=project, check=False).returncode == 0
