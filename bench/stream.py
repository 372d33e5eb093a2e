"""Benchmark `songrec stream`: one scorer process on the shipped bundle, on the machine's Redis.

Each measure has its own streams (database 12 of the Redis on 127.0.0.1:6379, deleted
afterwards) and its own `songrec stream --bundle models/bundle/bundle.pkl` process, started
and ready (model loaded, catalog predictions computed) before it counts. Times are Redis's
clock: an entry's id is the millisecond Redis appended it, so an input's latency is its
result's id minus its own id.

- Sustained rate: a backlog of entries written before the scorer starts, then scored; the rate
  is the entries over the time from the first result to the last. Genre and popularity entries
  (half each) name 3 catalog tracks, or 2 catalog tracks and a song given by its features
  (which goes through the models); recommend entries name 5 catalog tracks, k = 10.
- Latency at a fixed 100 entries/s for --duration seconds (a third each task): p50, p99, max,
  with catalog tracks only and with a feature row in every entry.
- Overload: mixed entries (a third each task, catalog tracks) written at twice the rate one
  scorer sustains, for --duration seconds. The group's lag is sampled every 2 s, then the time
  to drain it once the writer stops; every entry must have exactly one result.

The writer is this process, on the same machine (it takes CPU from the scorer and Redis). It
measures and prints; it asserts nothing.

    python bench/stream.py                      # needs `make run` first (models/bundle/bundle.pkl)
    python bench/stream.py --duration 20 --backlog 20000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from results import run_and_record  # bench/results.py

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BUNDLE = ROOT / "models" / "bundle" / "bundle.pkl"
REDIS_URL = "redis://127.0.0.1:6379/12"  # a database the tests do not use
INTEGER_FEATURES = ("key", "mode", "duration_ms", "year")


class Bodies:
    """Request bodies over the shipped catalog (uniformly drawn tracks)."""

    def __init__(self, seed: int = 5) -> None:
        from songrec.core.io import load_model

        bundle = load_model(BUNDLE)
        self.ids = bundle.catalog["track_id"].astype(str).tolist()
        self.rows = [
            {
                **{
                    name: int(row[name]) if name in INTEGER_FEATURES else float(row[name])
                    for name in bundle.numeric_features
                },
                "track_artist": "Somebody New",
            }
            for _, row in bundle.catalog.sample(500, random_state=seed).iterrows()
        ]
        self.random = random.Random(seed)

    def entry(self, task: str, features: bool = False) -> dict[str, str]:
        size = 5 if task == "recommend" else (2 if features else 3)
        body: dict[str, Any] = {"track_ids": self.random.sample(self.ids, size)}
        if features:
            body["tracks"] = [self.random.choice(self.rows)]
        if task == "recommend":
            body["k"] = 10
        return {"task": task, "body": json.dumps(body)}


class Streams:
    """One measure's streams, and a copy of the project configured for them."""

    def __init__(
        self, client: Any, folder: Path, batch_size: int | None, claim_idle_ms: int | None = None
    ) -> None:
        self.client = client
        prefix = f"songrec-bench:{uuid.uuid4().hex[:10]}"
        self.requests, self.results = f"{prefix}:requests", f"{prefix}:results"
        self.dead_letter, self.group = f"{prefix}:dead-letter", "bench"
        self.project = folder / prefix.replace(":", "-")
        shutil.copytree(ROOT / "config", self.project / "config")
        shutil.copy(ROOT / "params.yaml", self.project / "params.yaml")
        path = self.project / "config" / "config.yaml"
        config = yaml.safe_load(path.read_text())
        config["stream"].update(
            url=REDIS_URL,
            requests=self.requests,
            results=self.results,
            dead_letter=self.dead_letter,
            group=self.group,
        )
        config["stream"]["metrics_port"] = 0
        if batch_size:
            config["stream"]["batch_size"] = batch_size
        if claim_idle_ms:
            config["stream"]["claim_idle_ms"] = claim_idle_ms
        self.batch_size = config["stream"]["batch_size"]
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        client.xgroup_create(self.requests, self.group, id="0", mkstream=True)

    def write(self, entries: list[dict[str, str]]) -> list[bytes]:
        pipe = self.client.pipeline(transaction=False)
        for fields in entries:
            pipe.xadd(self.requests, fields)
        return list(pipe.execute())

    def answered(self) -> int:
        return int(self.client.xlen(self.results)) + int(self.client.xlen(self.dead_letter))

    def group_state(self) -> tuple[int, int]:
        (group,) = self.client.xinfo_groups(self.requests)
        return int(group["lag"] or 0), int(group["pending"])

    def latencies_ms(self) -> tuple[np.ndarray, Counter[str]]:
        latencies: list[int] = []
        versions: Counter[str] = Counter()
        for result_id, fields in self.client.xrange(self.results):
            latencies.append(_millis(result_id) - _millis(fields[b"input_id"]))
            versions[fields[b"model_version"].decode()] += 1
        return np.asarray(latencies, dtype=np.float64), versions

    def delete(self) -> None:
        self.client.delete(self.requests, self.results, self.dead_letter)


def _millis(entry_id: bytes) -> int:
    return int(entry_id.split(b"-")[0])


@contextmanager
def scorer(
    streams: Streams, log: Path, max_entries: int | None = None, consumer: str = "bench-1"
) -> Iterator[subprocess.Popen[bytes]]:
    """A `songrec stream` process on the streams, ready (its start line logged) when yielded."""
    command = [str(BIN / "songrec"), "stream", "--bundle", str(BUNDLE), "--consumer", consumer]
    if max_entries:
        command += ["--max-entries", str(max_entries)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("SONGREC_STREAM_URL", None)  # the project's stream.url: REDIS_URL
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=streams.project, env=env, stdout=output, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 120
            while "songrec stream: consumer" not in log.read_text():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"songrec stream did not start:\n{log.read_text()[-2000:]}")
                time.sleep(0.05)
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(30)


def sustained(
    client: Any, folder: Path, name: str, entries: list[dict[str, str]], batch: int | None, target: str = ""
) -> float:
    streams = Streams(client, folder, batch)
    try:
        for start in range(0, len(entries), 5000):
            streams.write(entries[start : start + 5000])
        with scorer(streams, folder / "sustained.log", max_entries=len(entries)) as process:
            process.wait(600)
        first = client.xrange(streams.results, count=1)[0][0]
        last = client.xrevrange(streams.results, count=1)[0][0]
        seconds = max(_millis(last) - _millis(first), 1) / 1000
        rate = (len(entries) - 1) / seconds
        dead = client.xlen(streams.dead_letter)
        row = f"{name:<52}{len(entries):>9,}{streams.batch_size:>7}{seconds:>9.2f}{rate:>11,.0f}{dead:>6}"
        print(f"{row}  {target}".rstrip(), flush=True)
        return rate
    finally:
        streams.delete()


def fixed_rate(
    client: Any,
    folder: Path,
    bodies: Bodies,
    name: str,
    rate: float,
    seconds: float,
    features: bool,
    target: str = "",
) -> None:
    streams = Streams(client, folder, None)
    tasks = ("recommend", "genre", "popularity")
    try:
        with scorer(streams, folder / "latency.log"):
            count = int(rate * seconds)
            started = time.monotonic()
            for index in range(count):
                pause = started + index / rate - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                streams.write([bodies.entry(tasks[index % 3], features)])
            _wait(lambda: streams.answered() >= count, 120)
        latencies, _ = streams.latencies_ms()
        p50, p99 = np.percentile(latencies, [50, 99])
        row = f"{name:<52}{count:>9,}{rate:>9.0f}{p50:>9.1f}{p99:>9.1f}{latencies.max():>9.1f}"
        print(f"{row}{client.xlen(streams.dead_letter):>6}  {target}".rstrip(), flush=True)
    finally:
        streams.delete()


def overload(client: Any, folder: Path, bodies: Bodies, rate: float, seconds: float) -> None:
    streams = Streams(client, folder, None)
    tasks = ("recommend", "genre", "popularity")
    print(f"\nOverload: mixed entries (a third each task) written at {rate:,.0f}/s for {seconds:.0f} s")
    print(f"{'s':>6}{'written':>10}{'answered':>10}{'lag':>9}{'pending':>9}")
    written: list[bytes] = []
    try:
        with scorer(streams, folder / "overload.log"):
            started = time.monotonic()
            next_sample, tick = started + 2, 0.01
            while (now := time.monotonic()) - started < seconds:
                due = int((now - started) * rate) - len(written)
                if due > 0:
                    written += streams.write(
                        [bodies.entry(tasks[(len(written) + i) % 3]) for i in range(due)]
                    )
                if now >= next_sample:
                    lag, pending = streams.group_state()
                    answered = streams.answered()
                    print(f"{now - started:>6.0f}{len(written):>10,}{answered:>10,}{lag:>9,}{pending:>9,}")
                    next_sample += 2
                time.sleep(tick)
            stopped = time.monotonic()
            lag, _ = streams.group_state()
            _wait(lambda: streams.answered() >= len(written), 600)
            drained = time.monotonic() - stopped
        results = Counter(fields[b"input_id"] for _, fields in client.xrange(streams.results))
        letters = client.xlen(streams.dead_letter)
        once = set(results) == set(written) and max(results.values()) == 1
        growth = lag / seconds
        print(
            f"lag when the writer stopped: {lag:,} entries (growing {growth:,.0f}/s); "
            f"drained in {drained:.1f} s; {len(written):,} entries, {sum(results.values()):,} results, "
            f"{letters} dead letters, each answered once: {once}"
        )
    finally:
        streams.delete()


SECTIONS = ("sustained", "latency", "overload", "crash")


def crash(client: Any, folder: Path, bodies: Bodies, count: int) -> None:
    """SIGKILL of a scorer a third of the way through `count` entries; a second scorer claims
    what it held. Every entry must end with exactly one output (a result or a dead letter)."""
    streams = Streams(client, folder, None, claim_idle_ms=2000)
    tasks = ("recommend", "genre", "popularity")
    print(f"\nCrash: {count:,} mixed entries; SIGKILL of the scorer after a third, a second one claims")
    try:
        written: list[bytes] = []
        for start in range(0, count, 10_000):
            written += streams.write(
                [bodies.entry(tasks[i % 3]) for i in range(start, min(start + 10_000, count))]
            )
        with scorer(streams, folder / "doomed.log", consumer="doomed") as doomed:
            _wait(lambda: streams.answered() >= count // 3, 600)
            doomed.kill()  # SIGKILL: whatever it had read and not written stays pending on it
            doomed.wait(30)
        _, pending_at_kill = streams.group_state()
        answered_at_kill = streams.answered()
        started = time.monotonic()
        with scorer(streams, folder / "heir.log", consumer="heir"):
            _wait(lambda: streams.answered() >= count, 900)
            took = time.monotonic() - started
        outputs: Counter[bytes] = Counter()
        for stream in (streams.results, streams.dead_letter):
            for _, fields in client.xrange(stream):
                outputs[fields[b"input_id"]] += 1
        missing = len(set(written) - set(outputs))
        twice = sum(1 for n in outputs.values() if n > 1)
        print(
            f"answered before the kill {answered_at_kill:,}, pending on the killed scorer "
            f"{pending_at_kill:,}; the heir finished in {took:.1f} s"
        )
        print(
            f"entries without an output: {missing} (target 0); entries with two or more: {twice} (target 0)"
        )
    finally:
        streams.delete()


def _wait(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"not answered after {timeout} s")
        time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=30_000, help="entries of a sustained-rate run")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of a fixed-rate run")
    parser.add_argument("--batch-size", type=int, default=None, help="stream.batch_size (default: config)")
    parser.add_argument("--crash-entries", type=int, default=100_000, help="entries of the SIGKILL run")
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help=f"of {', '.join(SECTIONS)} (default: all)"
    )
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    if not BUNDLE.exists():
        print("run `make run` first: the benchmark scores with models/bundle/bundle.pkl", file=sys.stderr)
        return 1
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        print(f"no Redis at {REDIS_URL}: {exc}", file=sys.stderr)
        return 1
    bodies = Bodies()
    predictions = ("genre", "popularity")
    print("One `songrec stream` process on models/bundle/bundle.pkl; Redis on the same machine.")
    with tempfile.TemporaryDirectory(prefix="songrec-bench-stream-") as name:
        folder = Path(name)
        if {"sustained", "overload"} & sections:
            print("\nSustained rate (a backlog, scored from the first result to the last):")
            print(f"{'entries':<52}{'count':>9}{'batch':>7}{'seconds':>9}{'per s':>11}{'dead':>6}  target")
            n = args.backlog
            catalog = [bodies.entry(predictions[i % 2]) for i in range(n)]
            name = "genre/popularity, 3 catalog tracks"
            rate_predict = sustained(client, folder, name, catalog, args.batch_size, ">= 3,000")
            featured = [bodies.entry(predictions[i % 2], features=True) for i in range(n // 3)]
            name = "genre/popularity, 2 catalog tracks + 1 feature row"
            sustained(client, folder, name, featured, args.batch_size)
            recommend = [bodies.entry("recommend") for _ in range(n // 6)]
            name = "recommend, 5 catalog tracks, k 10"
            rate_recommend = sustained(client, folder, name, recommend, args.batch_size, ">= 600")

        if "latency" in sections:
            print(f"\nEnd-to-end latency at a fixed rate, {args.duration:.0f} s (a third each task), ms:")
            print(f"{'entries':<52}{'count':>9}{'per s':>9}{'p50':>9}{'p99':>9}{'max':>9}{'dead':>6}  target")
            fixed_rate(client, folder, bodies, "catalog tracks", 100, args.duration, False, "p99 <= 50")
            fixed_rate(client, folder, bodies, "with a feature row each", 100, args.duration, True)

        if "overload" in sections:
            mixed = 1 / (1 / (3 * rate_recommend) + 2 / (3 * rate_predict))  # a third recommend
            overload(client, folder, bodies, 2 * mixed, args.duration)

        if "crash" in sections:
            crash(client, folder, bodies, args.crash_entries)
    client.close()
    return 0


def section_name(argv: list[str]) -> str:
    """`stream`, or `stream (<sections>)` for a partial run, so it never replaces a full one."""
    chosen = next((a.split("=", 1)[1] for a in argv if a.startswith("--sections=")), None)
    if chosen is None and "--sections" in argv[:-1]:
        chosen = argv[argv.index("--sections") + 1]
    return "stream" if chosen in (None, ",".join(SECTIONS)) else f"stream ({chosen})"


if __name__ == "__main__":
    sys.exit(run_and_record(section_name(sys.argv), main))
