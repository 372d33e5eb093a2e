"""Benchmark slow clients: a real `songrec serve` held by thousands of slow-body connections.

An attacker keeps --connections connections open, each sending a /recommend request's headers
and then its body one byte every --trickle seconds (a new connection as soon as one is
closed), for --duration seconds. Meanwhile one client asks /health and /recommend in turn, one
request at a time, as a monitor and a user would. It prints the latencies of that client, how
long the server kept each slow connection (serve.body_timeout_seconds is the deadline) and what
it answered them, and the server's open connections. It measures and prints; it asserts nothing.

    python bench/slow_clients.py                       # needs `make run` first (a champion)
    python bench/slow_clients.py --connections 5000 --duration 30
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests
from results import run_and_record  # bench/results.py
from serving import real_playlists, songrec_serve  # bench/serving.py

HEADERS = (
    b"POST /recommend HTTP/1.1\r\nHost: songrec\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100000\r\n\r\n"
)


class Attack:
    """Slow-body connections kept at `connections` until `stop` is set."""

    def __init__(self, url: str, connections: int, trickle: float) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.connections = connections
        self.trickle = trickle
        self.open = 0
        self.lifetimes: list[float] = []  # seconds from connect to the server's close
        self.answers: dict[str, int] = {}  # the server's status line (or "closed, no answer")
        self.refused = 0  # connections that could not be made
        self.stop = threading.Event()

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        ramp = 2.0  # seconds to open them all: the listen backlog takes a few thousand at once
        tasks = []
        for index in range(self.connections):
            tasks.append(asyncio.create_task(self._hold_one()))
            if index % 100 == 99:
                await asyncio.sleep(ramp * 100 / self.connections)
        await asyncio.gather(*tasks)

    async def _hold_one(self) -> None:
        while not self.stop.is_set():
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                self.refused += 1
                await asyncio.sleep(0.5)
                continue
            opened = time.monotonic()
            self.open += 1
            received = b""
            try:
                writer.write(HEADERS + b'{"track_ids": [')
                while not self.stop.is_set():
                    try:
                        chunk = await asyncio.wait_for(reader.read(4096), self.trickle)
                    except TimeoutError:
                        writer.write(b" ")
                        continue
                    if not chunk:
                        break
                    received += chunk
            except OSError:
                pass
            finally:
                self.open -= 1
                writer.close()
            if self.stop.is_set():
                return
            self.lifetimes.append(time.monotonic() - opened)
            status = received.split(b"\r\n", 1)[0].decode(errors="replace") or "closed, no answer"
            self.answers[status] = self.answers.get(status, 0) + 1


def probe(url: str, body: dict, seconds: float, attack: Attack) -> dict[str, list[float]]:
    """/health and /recommend in turn, one at a time, for `seconds`; latencies in ms."""
    session = requests.Session()
    latencies: dict[str, list[float]] = {"/health": [], "/recommend": []}
    failures: dict[str, int] = {}
    held: list[int] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for route in latencies:
            began = time.perf_counter()
            try:
                if route == "/health":
                    response = session.get(url + route, timeout=10)
                else:
                    response = session.post(url + route, json=body, timeout=10)
                ok = response.status_code == 200
            except requests.RequestException:
                ok = False
            latencies[route].append((time.perf_counter() - began) * 1000)
            if not ok:
                failures[route] = failures.get(route, 0) + 1
        held.append(attack.open)
        time.sleep(0.02)
    return {**latencies, "failures": failures, "held": held}  # type: ignore[dict-item]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of the attack")
    parser.add_argument("--trickle", type=float, default=2.0, help="seconds between a slow client's bytes")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.connections + 1000)), hard))

    body = {"track_ids": real_playlists(5, 1, seed=0)[0], "k": 10}
    with (
        tempfile.TemporaryDirectory(prefix="songrec-slow-") as tmp,
        songrec_serve(Path(tmp), "slow-clients") as (url, _),
    ):
        quiet = probe(url, body, 5.0, Attack(url, 0, args.trickle))
        attack = Attack(url, args.connections, args.trickle)
        attacker = threading.Thread(target=attack.run, daemon=True)
        attacker.start()
        time.sleep(3.0)  # the ramp
        loaded = probe(url, body, args.duration, attack)
        attack.stop.set()
        attacker.join(30)

    print(f"One `songrec serve` (config/config.yaml's serve limits); {args.connections:,} slow-body")
    print(f"connections (a byte every {args.trickle:g} s, reopened when closed) for {args.duration:g} s,")
    print("while one client asks /health and /recommend in turn.\n")
    print(f"{'client latency, ms':<34}{'requests':>9}{'p50':>8}{'p99':>8}{'max':>8}{'failed':>8}  target")
    for label, run in (("no attack", quiet), ("under attack", loaded)):
        for route in ("/health", "/recommend"):
            values = np.array(run[route])
            print(
                f"{label + ', ' + route:<34}{len(values):>9,}{np.percentile(values, 50):>8.1f}"
                f"{np.percentile(values, 99):>8.1f}{values.max():>8.1f}{run['failures'].get(route, 0):>8}"
                f"  {'p99 <= 100' if label == 'under attack' else ''}"
            )
    held = np.array(loaded["held"])
    lifetimes = np.array(attack.lifetimes) if attack.lifetimes else np.array([np.nan])
    print(f"\nslow connections open during the probe: median {np.median(held):,.0f}, min {held.min():,}")
    print(
        f"slow connections closed by the server: {len(attack.lifetimes):,}, after a median "
        f"{np.median(lifetimes):.1f} s, at most {np.max(lifetimes):.1f} s (body timeout 10 s)"
    )
    for status, count in sorted(attack.answers.items(), key=lambda item: -item[1]):
        print(f"  answered {status!r}: {count:,}")
    print(f"connections the attacker could not open: {attack.refused:,}")
    return 0


if __name__ == "__main__":
    sys.exit(run_and_record("slow clients", main))
