"""Benchmark serving: `songrec serve` against `mlflow models serve` of the same registered model.

One run measures, on this machine, with real servers started as processes:
- /recommend latency (p50, p99) and throughput at concurrency 1 and 16, for `songrec serve`
  and for `mlflow models serve -m models:/songrec@champion` (the prior projects' way of
  serving), and their ratio; the same playlists (real ones from the catalog) go to both;
- time to ready of both servers (process start to the first 200 of /ready, resp. /ping);
- `songrec serve` with request logging off (SONGREC_EVENT_LOGGING=off), on (its default: the
  writes held while the API is busy, written when the run ends) and on with writes as events
  come (SONGREC_EVENT_HOLD_SECONDS=0: what a burst longer than the 30 s hold costs after the
  hold), at concurrency 1, at full speed (the next request as soon as the answer is in: the
  server and wrk keep the 2 CPUs busy, and the event writer's CPU has to come from them) and
  with a client that waits --pause-ms between requests (spare CPU, as a server that is not
  saturated has); after each run with logging on, the time until everything is written;
- `songrec serve --bundle` over a synthetic catalog of 1,000,000 tracks resampled from the real
  one (small feature jitter, new ids, each new track in its source track's playlists, the
  learned weights reused with HybridRecommender.with_catalog), built once, cached in var/bench/;
  its time to ready, and its resident memory after the load (as /ready reports it);
- 10 champion swaps under load (concurrency 16): the champion alias moved between registered
  versions in a copy of the registry, /admin/reload after each move; failed requests counted.

Servers that are compared run side by side and are measured in interleaved rounds; each figure
is the round with the median p99 (on a shared machine, noise comes in bursts). The load comes
from wrk (apt-get install wrk) when it is installed, else from Python threads. It measures and
prints; it asserts nothing.

    python bench/serving.py                    # needs `make run` first (a champion in mlruns/)
    python bench/serving.py --duration 30      # seconds per round
    python bench/serving.py --sections logging # only some of: compare, logging, synthetic, swaps
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import requests
from results import run_and_record  # bench/results.py

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SYNTHETIC_DIR = ROOT / "var" / "bench"
ADMIN_TOKEN = "bench-admin-token"

WRK_SCRIPT = """
local bodies = {}
for line in io.lines(os.getenv("BENCH_BODIES")) do bodies[#bodies + 1] = line end
local counter = 0
request = function()
  counter = counter % #bodies + 1
  local line = bodies[counter]
  if string.sub(line, 1, 4) == "GET " then return wrk.format("GET", string.sub(line, 5)) end
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, line)
end
local pause = tonumber(os.getenv("BENCH_PAUSE_MS") or "0")
if pause > 0 then delay = function() return pause end end
done = function(summary, latency, requests)
  io.write(string.format(
    '\\nBENCH {"requests": %d, "seconds": %.3f, "p50_ms": %.3f, "p99_ms": %.3f, "non2xx": %d, '
    .. '"socket_errors": %d}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


@dataclass(frozen=True)
class Load:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    failed: int

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def environment(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    for name in ("DAGSHUB_REPO_OWNER", "DAGSHUB_REPO_NAME", "DAGSHUB_USER_TOKEN", "SONGREC_BUNDLE"):
        env.pop(name, None)
    env.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{ROOT / 'mlruns' / 'mlflow.db'}")
    return {**env, **extra}


@contextmanager
def server(
    command: list[str], ready_path: str, env: dict[str, str], log: Path
) -> Iterator[tuple[str, float]]:
    """Start a server in its own process group; yield its URL and seconds to ready; stop it."""
    port = free_port()
    command = [part.replace("{port}", str(port)) for part in command]
    started = time.perf_counter()
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited ({process.returncode}):\n{log.read_text()[-3000:]}")
            try:
                if requests.get(url + ready_path, timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.perf_counter() - started > 300:
                raise RuntimeError(f"{command[0]} not ready after 300 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.05)
        yield url, time.perf_counter() - started
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def songrec_serve(folder: Path, name: str, *extra: str, **env: str) -> Any:
    events = f"sqlite:///{folder / f'events-{name}.db'}"
    # One load generator is one client address: serve.rate_limits would measure the limit.
    env = {"SONGREC_RATE_LIMITS": "off", **env}
    return server(
        [str(BIN / "songrec"), "serve", "--host", "127.0.0.1", "--port", "{port}", *extra],
        "/ready",
        environment(SONGREC_EVENT_STORE_URL=events, SONGREC_ADMIN_TOKEN=ADMIN_TOKEN, **env),
        folder / f"{name}.log",
    )


def mlflow_serve(folder: Path) -> Any:
    return server(
        [
            str(BIN / "mlflow"),
            "models",
            "serve",
            "-m",
            "models:/songrec@champion",
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            "{port}",
        ],
        "/ping",
        environment(),
        folder / "mlflow.log",
    )


# --------------------------------------------------------------------------- load


def run_load(url: str, bodies: Path, concurrency: int, seconds: float, pause_ms: float = 0) -> Load:
    """Each of `concurrency` clients sends a request, reads the answer, waits `pause_ms`, again."""
    if shutil.which("wrk"):
        return _wrk(url, bodies, concurrency, seconds, pause_ms)
    return _threads(url, bodies, concurrency, seconds, pause_ms)


def _wrk(url: str, bodies: Path, concurrency: int, seconds: float, pause_ms: float) -> Load:
    script = bodies.with_suffix(".lua")
    script.write_text(WRK_SCRIPT)
    command = [
        "wrk",
        f"-t{min(concurrency, 2)}",
        f"-c{concurrency}",
        f"-d{seconds:.0f}s",
        "--timeout",
        "30s",
        "-s",
        str(script),
        url,
    ]
    output = subprocess.run(
        command,
        env={**os.environ, "BENCH_BODIES": str(bodies), "BENCH_PAUSE_MS": str(pause_ms)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(line for line in output.splitlines() if line.startswith("BENCH "))
    data = json.loads(line.removeprefix("BENCH "))
    return Load(
        data["requests"],
        data["seconds"],
        data["p50_ms"],
        data["p99_ms"],
        data["non2xx"] + data["socket_errors"],
    )


def _threads(url: str, bodies: Path, concurrency: int, seconds: float, pause_ms: float) -> Load:
    """Python threads, one keep-alive connection each (the fallback without wrk)."""
    payloads = bodies.read_text().splitlines()
    host, port_path = url.removeprefix("http://").split(":", 1)
    port, _, path = port_path.partition("/")
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client(offset: int) -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        mine: list[float] = []
        failed = 0
        index = offset
        while time.perf_counter() < deadline:
            body = payloads[index % len(payloads)].encode()
            index += 1
            began = time.perf_counter()
            try:
                connection.request("POST", "/" + path, body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                connection.close()
                connection = http.client.HTTPConnection(host, int(port), timeout=30)
            mine.append(time.perf_counter() - began)
            time.sleep(pause_ms / 1000)
            failed += not ok
        with lock:
            latencies.extend(mine)
            failures[0] += failed

    began = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i * 7,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    values = np.asarray(latencies) * 1000
    return Load(
        len(values), elapsed, float(np.percentile(values, 50)), float(np.percentile(values, 99)), failures[0]
    )


def measure(url: str, bodies: Path, concurrency: int, seconds: float, pause_ms: float = 0) -> Load:
    run_load(url, bodies, concurrency, min(3.0, seconds))  # warm up: caches, connections, JIT-free paths
    return run_load(url, bodies, concurrency, seconds, pause_ms)


def event_counts(url: str, wait: float = 30.0) -> tuple[int, int]:
    """Events the server logged and dropped (its /metrics), once its queue is empty (or `wait` s)."""
    deadline = time.monotonic() + wait
    while True:
        values = {}
        for line in requests.get(url + "/metrics", timeout=10).text.splitlines():
            name, _, value = line.partition(" ")
            values[name] = value
        if float(values.get("songrec_event_queue_depth", 0)) == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    return (
        int(float(values.get("songrec_events_logged_total", 0))),
        int(float(values.get("songrec_events_dropped_total", 0))),
    )


# --------------------------------------------------------------------------- payloads


def playlists(track_ids: list[list[str]], folder: Path, name: str) -> tuple[Path, Path]:
    """The same playlists as songrec requests and as `mlflow models serve` requests (JSON lines)."""
    songrec = folder / f"{name}-songrec.jsonl"
    mlflow = folder / f"{name}-mlflow.jsonl"
    songrec.write_text("".join(json.dumps({"track_ids": ids, "k": 10}) + "\n" for ids in track_ids))
    mlflow.write_text(
        "".join(
            json.dumps(
                {
                    "dataframe_records": [{"track_id": t} for t in ids],
                    "params": {"task": "recommend", "k": 10},
                }
            )
            + "\n"
            for ids in track_ids
        )
    )
    return songrec, mlflow


def real_playlists(size: int, count: int, seed: int) -> list[list[str]]:
    import pandas as pd

    members = pd.read_parquet(
        ROOT / "data" / "processed" / "memberships.parquet", columns=["playlist_id", "track_id"]
    )
    groups = [g["track_id"].drop_duplicates().tolist() for _, g in members.groupby("playlist_id")]
    groups = [g for g in groups if len(g) >= size]
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(groups), size=min(count, len(groups)), replace=False)
    return [list(rng.choice(groups[i], size=size, replace=False)) for i in chosen]


# --------------------------------------------------------------------------- the synthetic catalog


def synthetic_bundle(n_tracks: int, seed: int) -> Path:
    """A bundle over n_tracks resampled from the real catalog (cached by source bundle and size)."""
    import hashlib

    import pandas as pd

    from songrec.config.manager import ConfigurationManager
    from songrec.core.io import load_model, save_model
    from songrec.models.bundle import SongrecBundle
    from songrec.models.recommender.hybrid import HybridRecommender

    manager = ConfigurationManager(ROOT)
    source = manager.train().bundle
    stamp = hashlib.sha256(f"{source.stat().st_size}:{source.stat().st_mtime_ns}:{n_tracks}:{seed}".encode())
    target = SYNTHETIC_DIR / f"synthetic-{n_tracks}-{stamp.hexdigest()[:10]}.pkl"
    if target.exists():
        return target
    started = time.perf_counter()
    bundle: SongrecBundle = load_model(source)
    if not isinstance(bundle.recommender, HybridRecommender):
        raise SystemExit("the synthetic catalog needs the hybrid recommender")
    schema = manager.schema
    rng = np.random.default_rng(seed)
    catalog = bundle.catalog
    picks = rng.integers(0, len(catalog), n_tracks)
    big = catalog.iloc[picks].reset_index(drop=True)
    big["track_id"] = [f"SYN{i:019d}" for i in range(n_tracks)]
    for name in schema.audio_features:
        rule = schema.column(name)
        if rule.dtype != "float":
            continue
        jitter = rng.normal(0.0, 0.01 * float(catalog[name].std()), n_tracks)
        low = -np.inf if rule.min is None else rule.min
        high = np.inf if rule.max is None else rule.max
        big[name] = np.clip(big[name].to_numpy() + jitter, low, high)
        if rule.min_exclusive:
            big.loc[big[name] <= low, name] = (
                catalog[name].iloc[picks][big[name].to_numpy() <= low].to_numpy()
            )
    # Each new track is in its source track's (visible) playlists: playlists grow as the catalog does.
    members = pd.read_parquet(manager.transform().memberships)
    mapping = pd.DataFrame({"source": catalog["track_id"].to_numpy()[picks], "track_id": big["track_id"]})
    memberships = (
        members.rename(columns={"track_id": "source"}).merge(mapping, on="source").drop(columns="source")
    )
    recommender = bundle.recommender.with_catalog(big, memberships)
    wider = SongrecBundle(
        big,
        recommender,
        bundle.recommender_name,
        bundle.genre_model,
        bundle.popularity_model,
        bundle.numeric_features,
        {**bundle.metadata, "synthetic_from": str(source), "synthetic_seed": seed},
    )
    SYNTHETIC_DIR.mkdir(parents=True, exist_ok=True)
    for stale in SYNTHETIC_DIR.glob(f"synthetic-{n_tracks}-*.pkl"):  # built from an older bundle
        stale.unlink()
    partial = target.with_suffix(".tmp")
    save_model(wider, partial)
    partial.replace(target)
    print(
        f"  built {target.relative_to(ROOT)} ({n_tracks:,} tracks) in {time.perf_counter() - started:.0f} s"
    )
    return target


# --------------------------------------------------------------------------- swaps under load


def swaps_under_load(folder: Path, bodies: Path, swaps: int, concurrency: int) -> dict[str, Any]:
    """Move the champion alias between registered versions in a copy of the registry, under load."""
    from mlflow import MlflowClient

    registry = folder / "registry.db"
    shutil.copy(ROOT / "mlruns" / "mlflow.db", registry)  # the artifacts stay where they are (read only)
    uri = f"sqlite:///{registry}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    versions = sorted({str(v.version) for v in client.search_model_versions("name='songrec'")}, key=int)
    champion = str(client.get_model_version_by_alias("songrec", "champion").version)
    others = [v for v in versions if v != champion]
    # Alternate the alias between the champion and another version (with one version only,
    # force a reload of the same one each time).
    targets = (
        [others[0] if swap % 2 == 0 else champion for swap in range(swaps)] if others else [champion] * swaps
    )
    load_seconds = 10 + 4 * swaps
    result: dict[str, Any] = {"versions": versions}
    with songrec_serve(folder, "swaps", MLFLOW_TRACKING_URI=uri) as (url, _):
        holder: dict[str, Load] = {}
        loader = threading.Thread(
            target=lambda: holder.setdefault(
                "load", run_load(url + "/recommend", bodies, concurrency, load_seconds)
            )
        )
        loader.start()
        time.sleep(3)
        timings = []
        seen = {requests.get(url + "/ready", timeout=5).json()["model_version"]}
        for target in targets:
            client.set_registered_model_alias("songrec", "champion", target)
            began = time.perf_counter()
            answer = requests.post(
                url + "/admin/reload",
                params={"force": "true"} if not others else {},
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                timeout=300,
            ).json()
            timings.append(time.perf_counter() - began)
            seen.add(str(answer["model_version"]))
            time.sleep(0.5)
        loader.join()
    load = holder["load"]
    result.update(
        swaps=swaps,
        requests=load.requests,
        failed=load.failed,
        p99_ms=load.p99_ms,
        seconds_per_swap=float(np.mean(timings)),
        versions_served=sorted(seen, key=int),
    )
    return result


# --------------------------------------------------------------------------- report


def row(label: str, concurrency: int | str, load: Load | None) -> str:
    if load is None:
        return f"{label:<34}{concurrency!s:>5}{'-':>10}{'-':>10}{'-':>10}{'-':>8}"
    return (
        f"{label:<34}{concurrency!s:>5}{load.p50_ms:>10.1f}{load.p99_ms:>10.1f}"
        f"{load.throughput:>10.0f}{load.failed:>8}"
    )


SECTIONS = ("compare", "logging", "synthetic", "swaps", "playlists")


def median_load(runs: list[Load]) -> Load:
    """The run with the median p99 (noise on a shared machine comes in bursts)."""
    return sorted(runs, key=lambda load: load.p99_ms)[len(runs) // 2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per measurement (default 10)")
    parser.add_argument("--playlist-size", type=int, default=5, help="catalog tracks per request (default 5)")
    parser.add_argument("--synthetic-tracks", type=int, default=1_000_000)
    parser.add_argument("--swaps", type=int, default=10)
    parser.add_argument(
        "--pause-ms",
        type=float,
        default=2.0,
        help="the logging section's second pace: a client that waits this long between requests",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds per measurement; the median (by p99) is shown (default 3)",
    )
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"what to measure, of {', '.join(SECTIONS)} (default: all)",
    )
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    if not (ROOT / "mlruns" / "mlflow.db").exists() or not (ROOT / "data" / "processed").exists():
        print("no local MLflow store or processed data: run `make run` first", file=sys.stderr)
        return 1
    folder = Path(tempfile.mkdtemp(prefix="songrec-bench-serving-"))
    seconds = args.duration
    loads: dict[tuple[str, int], Load] = {}
    ready: dict[str, float] = {}
    memory: dict[str, float | None] = {}
    logged: dict[str, tuple[int, int]] = {}
    caught_up: dict[tuple[str, float], float] = {}  # seconds from a run's end to all its events written
    swap: dict[str, Any] | None = None
    version = "?"
    generator = (
        "wrk " + subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split()[1]
        if shutil.which("wrk")
        else "Python threads"
    )
    print(
        f"songrec serving benchmark: {os.cpu_count()} CPUs, load from {generator}, {seconds:.0f} s per run, "
        f"playlists of {args.playlist_size} catalog tracks, k=10"
    )
    try:
        songrec_bodies, mlflow_bodies = playlists(
            real_playlists(args.playlist_size, 200, seed=7), folder, "real"
        )

        if "compare" in sections:
            print(f"- songrec serve and mlflow models serve, {args.rounds} interleaved rounds")
            with (
                songrec_serve(folder, "songrec") as (ours, ours_ready),
                mlflow_serve(folder) as (theirs, theirs_ready),
            ):
                ready["songrec serve"], ready["mlflow models serve"] = ours_ready, theirs_ready
                version = requests.get(ours + "/ready", timeout=5).json()["model_version"]
                for concurrency in (1, 16):
                    runs: dict[str, list[Load]] = {"songrec": [], "mlflow": []}
                    for _ in range(args.rounds):
                        runs["songrec"].append(
                            measure(ours + "/recommend", songrec_bodies, concurrency, seconds)
                        )
                        runs["mlflow"].append(
                            measure(theirs + "/invocations", mlflow_bodies, concurrency, seconds)
                        )
                    for name, measured in runs.items():
                        loads[name, concurrency] = median_load(measured)
                logged["songrec serve, concurrency 1 and 16"] = event_counts(ours)

        if "logging" in sections:
            print(
                f"- request logging off, on and on with no hold, {args.rounds} interleaved rounds "
                f"(concurrency 1), at full speed and with {args.pause_ms:g} ms between requests"
            )
            with (
                songrec_serve(folder, "logging-off", SONGREC_EVENT_LOGGING="off") as (off_url, _),
                songrec_serve(folder, "logging-on", SONGREC_EVENT_LOGGING="on") as (on_url, _),
                songrec_serve(
                    folder, "logging-unheld", SONGREC_EVENT_LOGGING="on", SONGREC_EVENT_HOLD_SECONDS="0"
                ) as (unheld_url, _),
            ):
                servers = {"off": off_url, "on": on_url, "on, no hold": unheld_url}
                for pause in (0.0, args.pause_ms):
                    runs: dict[str, list[Load]] = {state: [] for state in servers}
                    for _ in range(args.rounds):
                        for state, url in servers.items():
                            runs[state].append(measure(url + "/recommend", songrec_bodies, 1, seconds, pause))
                            if state != "off":  # its writes must not fall into the next run
                                began = time.perf_counter()
                                event_counts(url, wait=120)
                                caught_up[state, pause] = max(
                                    caught_up.get((state, pause), 0.0), time.perf_counter() - began
                                )
                    for state, measured in runs.items():
                        loads[f"logging {state}, pause {pause:g}", 1] = median_load(measured)
                logged["request logging on"] = event_counts(on_url)
                logged["request logging on, no hold"] = event_counts(unheld_url)

        if "synthetic" in sections:
            print(f"- a synthetic catalog of {args.synthetic_tracks:,} tracks")
            path = synthetic_bundle(args.synthetic_tracks, seed=11)
            with songrec_serve(folder, "synthetic", "--bundle", str(path)) as (url, took):
                ready[f"songrec serve, {args.synthetic_tracks:,} tracks"] = took
                picks = np.random.default_rng(3).integers(0, args.synthetic_tracks, (200, args.playlist_size))
                big_bodies, _ = playlists(
                    [[f"SYN{i:019d}" for i in p] for p in picks.tolist()], folder, "synthetic"
                )
                for concurrency in (1, 16):
                    loads["synthetic", concurrency] = median_load(
                        [
                            measure(url + "/recommend", big_bodies, concurrency, seconds)
                            for _ in range(args.rounds)
                        ]
                    )
                memory[f"songrec serve, {args.synthetic_tracks:,} tracks"] = requests.get(
                    url + "/ready", timeout=10
                ).json()["memory_mib"]

        if "playlists" in sections:
            print("- GET /playlists/{id}/recommendations from the latest batch (songrec batch recommend)")
            batch = subprocess.run(
                [str(BIN / "songrec"), "batch", "recommend", "--json"],
                cwd=ROOT, env=environment(), capture_output=True, text=True, check=True,
            )  # fmt: skip
            batched = json.loads(batch.stdout)
            import pandas as pd

            ids = pd.read_parquet(batched["output"], columns=["playlist_id"])["playlist_id"].unique().tolist()
            lines = folder / "playlists.txt"
            lines.write_text("".join(f"GET /playlists/{i}/recommendations?k=10\n" for i in ids))
            with songrec_serve(folder, "playlists") as (url, _):
                answer = requests.get(f"{url}/playlists/{ids[0]}/recommendations", timeout=10).json()
                if answer["source"] != "batch":
                    raise RuntimeError(f"the API answered live (batch v{batched['model_version']}): {answer}")
                for concurrency in (1, 16):
                    loads["playlists", concurrency] = median_load(
                        [measure(url, lines, concurrency, seconds) for _ in range(args.rounds)]
                    )
                # wrk corrects for coordinated omission: one stall of the server counts as many
                # slow requests at this rate. One client timing each request shows the other view.
                timed = []
                with requests.Session() as session:
                    deadline = time.perf_counter() + seconds
                    while time.perf_counter() < deadline:
                        began = time.perf_counter()
                        session.get(
                            f"{url}/playlists/{ids[len(timed) % len(ids)]}/recommendations?k=10", timeout=10
                        )
                        timed.append((time.perf_counter() - began) * 1000)
                direct = [*np.percentile(timed, [50, 99]).tolist(), max(timed), len(timed)]

        if "swaps" in sections:
            print(f"- {args.swaps} champion swaps under load (concurrency 16)")
            swap = swaps_under_load(folder, songrec_bodies, args.swaps, 16)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    print()
    print(f"POST /recommend (median of {args.rounds} rounds)")
    print(f"{'':<34}{'conc':>5}{'p50 ms':>10}{'p99 ms':>10}{'req/s':>10}{'failed':>8}")
    if "compare" in sections:
        for concurrency in (1, 16):
            ours, theirs = loads[("songrec", concurrency)], loads[("mlflow", concurrency)]
            print(row(f"songrec serve (model v{version})", concurrency, ours))
            print(row("mlflow models serve", concurrency, theirs))
            print(
                f"{'  ratio songrec / mlflow':<34}{concurrency:>5}{ours.p50_ms / theirs.p50_ms:>9.2f}x"
                f"{ours.p99_ms / theirs.p99_ms:>9.2f}x{ours.throughput / theirs.throughput:>9.1f}x"
            )
    if "playlists" in sections:
        print(f"GET /playlists/{{id}}/recommendations from the batch output (median of {args.rounds} rounds)")
        for concurrency in (1, 16):
            print(row("songrec serve, batch answers", concurrency, loads[("playlists", concurrency)]))
        print(
            f"  one Python client timing each request: p50 {direct[0]:.2f} ms, p99 {direct[1]:.2f} ms, "
            f"max {direct[2]:.1f} ms over {direct[3]:,} requests"
        )
        print("  target: p99 <= 5 ms (concurrency 1)")
    if "synthetic" in sections:
        for concurrency in (1, 16):
            label = f"songrec serve, {args.synthetic_tracks:,} tracks"
            print(row(label, concurrency, loads[("synthetic", concurrency)]))
    if "logging" in sections:
        for pause in (0.0, args.pause_ms):
            off = loads[(f"logging off, pause {pause:g}", 1)]
            pace = "full speed" if pause == 0 else f"{pause:g} ms pauses"
            print(row(f"logging off, {pace}", 1, off))
            for state in ("on", "on, no hold"):
                on = loads[(f"logging {state}, pause {pause:g}", 1)]
                print(row(f"logging {state}, {pace}", 1, on))
                print(
                    f"  costs p99 {100 * (on.p99_ms / off.p99_ms - 1):+.0f} %, "
                    f"p50 {100 * (on.p50_ms / off.p50_ms - 1):+.0f} %, "
                    f"throughput {100 * (on.throughput / off.throughput - 1):+.0f} %; "
                    f"all written {caught_up[state, pause]:.1f} s after a run at most"
                )
    print()
    for name, (written, dropped) in logged.items():
        print(f"request log of {name}: {written} events written, {dropped} dropped")
    if ready:
        print("time to ready: " + ", ".join(f"{name} {took:.1f} s" for name, took in ready.items()))
    for name, mib in memory.items():
        print(
            f"resident memory of {name} after its load (/ready): {'?' if mib is None else f'{mib:,.0f}'} MiB"
        )
    if swap is not None:
        print(
            f"{swap['swaps']} champion swaps under load: {swap['requests']} requests, "
            f"{swap['failed']} failed, "
            f"p99 {swap['p99_ms']:.0f} ms, {swap['seconds_per_swap']:.1f} s per swap, versions served "
            f"{', '.join(swap['versions_served'])} (registered: {', '.join(swap['versions'])})"
        )
    return 0


def section_name(argv: list[str]) -> str:
    """`serving`, or `serving (<sections>)` for a partial run, so it never replaces a full one."""
    chosen = next((a.split("=", 1)[1] for a in argv if a.startswith("--sections=")), None)
    if chosen is None and "--sections" in argv[:-1]:
        chosen = argv[argv.index("--sections") + 1]
    return "serving" if chosen in (None, ",".join(SECTIONS)) else f"serving ({chosen})"


if __name__ == "__main__":
    sys.exit(run_and_record(section_name(sys.argv), main))
