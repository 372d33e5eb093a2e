"""`songrec stream` on the machine's Redis: the API's answers and refusals, exactly one output
per input across crashes (SIGKILL), claims, several consumers and champion swaps, and a clean
stop on SIGTERM.

Every test uses its own streams (a unique key prefix) in database 11 of the Redis on
127.0.0.1:6379, and deletes them afterwards.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from fastapi.testclient import TestClient

from songrec.config.stage_configs import ServeConfig, StreamConfig
from songrec.core.errors import SongrecError
from songrec.models.bundle import SongrecBundle
from songrec.serving.model_store import ModelStore
from songrec.serving.schemas import build_request_models
from songrec.serving.stream import StreamScorer
from songrec.serving.stream_runner import model_store, run_stream
from songrec.tracking.model_source import ModelSource
from tests.conftest import BIN, edit_yaml, free_port
from tests.services import process_group
from tests.serving.conftest import MemorySource, SwitchableSource, feature_row, playlist_ids

REDIS_URL = "redis://127.0.0.1:6379/11"  # a database nothing else here uses
UNKNOWN_ID = "0000000000000000000000"
Client = Any  # redis.Redis: redis-py types its answers as `Any | Awaitable[Any]`


# --------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture
def redis_client() -> Iterator[Client]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"no Redis at 127.0.0.1:6379 ({exc}): apt-get install redis-server")
    yield client
    client.close()


@pytest.fixture
def stream_config(base_config: ServeConfig, redis_client: Client) -> Iterator[StreamConfig]:
    """Streams and a group of this test only (deleted afterwards)."""
    prefix = f"songrec-test:{uuid.uuid4().hex[:12]}"
    config = StreamConfig(
        url=REDIS_URL,
        requests=f"{prefix}:requests",
        results=f"{prefix}:results",
        dead_letter=f"{prefix}:dead-letter",
        group="scorers",
        batch_size=50,
        block_ms=100,
        claim_idle_ms=60_000,
        metrics_port=0,
        serve=base_config,
    )
    yield config
    keys = list(redis_client.scan_iter(match=f"{prefix}:*"))
    if keys:
        redis_client.delete(*keys)


@pytest.fixture
def store(bundle: SongrecBundle, base_config: ServeConfig) -> Iterator[ModelStore]:
    """The stream's model store (the API's, computing the catalog predictions before a swap)."""
    serving = stream_store(base_config, MemorySource({"1": bundle}, "1"))
    serving.start()
    yield serving
    serving.stop()


def add(client: Client, config: StreamConfig, task: str, body: Any) -> str:
    """XADD one entry; `body` goes as JSON unless it is already str or bytes."""
    raw = body if isinstance(body, str | bytes) else json.dumps(body)
    entry_id: bytes = client.xadd(config.requests, {"task": task, "body": raw})
    return entry_id.decode()


def outputs(client: Client, stream: str) -> list[dict[str, str]]:
    return [
        {key.decode(): value.decode("utf-8", errors="replace") for key, value in fields.items()}
        for _, fields in client.xrange(stream)
    ]


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not after {timeout} s: {what}")
        time.sleep(0.05)


def answered(client: Client, config: StreamConfig) -> int:
    return int(client.xlen(config.results)) + int(client.xlen(config.dead_letter))


def group_info(client: Client, config: StreamConfig) -> dict[str, Any]:
    (group,) = client.xinfo_groups(config.requests)
    return dict(group)


@contextmanager
def running(scorer: StreamScorer) -> Iterator[StreamScorer]:
    """The scorer's loop in a thread; stopped (after its batch in hand) and joined on exit."""
    failure: list[BaseException] = []

    def loop() -> None:
        try:
            scorer.run()
        except BaseException as exc:  # reported by the test's thread
            failure.append(exc)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield scorer
    finally:
        scorer.stop()
        thread.join(30)
        scorer.redis.close()
    assert not thread.is_alive(), "the scorer did not stop"
    assert not failure, failure


def scorer(config: StreamConfig, store: ModelStore, consumer: str = "one") -> StreamScorer:
    return StreamScorer(config, store, consumer, client=redis.Redis.from_url(config.url))


def api_answer(client: TestClient, task: str, body: dict[str, Any]) -> Any:
    path = {"recommend": "/recommend", "genre": "/predict/genre", "popularity": "/predict/popularity"}[task]
    response = client.post(path, json=body)
    return response.status_code, response.json()


def stream_store(config: ServeConfig, source: ModelSource) -> ModelStore:
    return model_store(config, source, build_request_models(config.schema, config))


# --------------------------------------------------------------------------- answers and refusals


def test_entries_get_the_api_answers_and_a_batch_s_feature_rows_one_model_call_per_task(
    redis_client: Client,
    stream_config: StreamConfig,
    store: ModelStore,
    bundle: SongrecBundle,
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = playlist_ids(bundle, size=4)
    other = playlist_ids(bundle, size=3, offset=1)
    bodies: list[tuple[str, dict[str, Any]]] = [
        ("genre", {"track_ids": ids}),
        ("genre", {"track_ids": [other[0], UNKNOWN_ID, other[0]], "tracks": [feature_row(bundle, 3)]}),
        ("genre", {"tracks": [feature_row(bundle, 5), feature_row(bundle, 8, track_artist=None)]}),
        ("popularity", {"track_ids": other}),
        ("popularity", {"track_ids": ids[:1], "tracks": [feature_row(bundle, 2)]}),
        ("recommend", {"track_ids": ids, "k": 5}),
        ("recommend", {"track_ids": [UNKNOWN_ID, *other], "tracks": [feature_row(bundle, 4)], "k": 7}),
        ("recommend", {"tracks": [feature_row(bundle, 9)]}),  # the default k
    ]
    entry_ids = [add(redis_client, stream_config, task, body) for task, body in bodies]
    calls: Counter[str] = Counter()
    for name in ("predict_genre", "predict_popularity"):
        original = getattr(bundle, name)

        def counted(frame: Any, name: str = name, original: Any = original) -> Any:
            calls[name] += 1
            return original(frame)

        monkeypatch.setattr(bundle, name, counted)

    consumer = scorer(stream_config, store)
    consumer.run(max_entries=len(bodies))

    # Catalog tracks come from the catalog predictions; feature rows in one call per task.
    assert calls == {"predict_genre": 1, "predict_popularity": 1}
    results = outputs(redis_client, stream_config.results)
    assert outputs(redis_client, stream_config.dead_letter) == []
    assert [r["input_id"] for r in results] == entry_ids
    monkeypatch.undo()  # the API answers with the bundle's own methods
    for result, entry_id, (task, body) in zip(results, entry_ids, bodies, strict=True):
        assert (result["task"], result["model_version"]) == (task, "1")
        status, expected = api_answer(client, task, body)
        assert status == 200, expected
        answer = json.loads(result["result"])
        assert answer["request_id"] == entry_id
        assert answer == {**expected, "request_id": entry_id}, task
    assert group_info(redis_client, stream_config)["pending"] == 0
    samples = {
        (sample.labels["task"], sample.labels["outcome"]): sample.value
        for metric in consumer.metrics.registry.collect()
        for sample in metric.samples
        if sample.name == "songrec_stream_entries_total"
    }
    assert samples == {("genre", "scored"): 3, ("popularity", "scored"): 2, ("recommend", "scored"): 3}


def test_invalid_entries_go_to_the_dead_letter_stream_with_the_field_and_the_stream_goes_on(
    redis_client: Client,
    stream_config: StreamConfig,
    store: ModelStore,
    bundle: SongrecBundle,
    client: TestClient,
) -> None:
    ids = playlist_ids(bundle, size=3)
    bad_energy = {"tracks": [feature_row(bundle, 0, energy=2.0)]}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"task": "genre", "body": "{not json"}, "body: malformed JSON at character 1"),
        ({"task": "translate", "body": json.dumps({"track_ids": ids})}, "task: unknown task 'translate'"),
        ({"body": json.dumps({"track_ids": ids})}, "task: missing"),
        ({"task": "genre"}, "body: missing"),
        ({"task": "genre", "body": b"\xff\xfe"}, "body: cannot be read as JSON (JSON text must be UTF-8)"),
        ({"task": "genre", "body": json.dumps(bad_energy)}, "tracks[0].energy: "),
        ({"task": "recommend", "body": json.dumps({"track_ids": ids, "k": 0})}, "k: "),
        ({"task": "popularity", "body": json.dumps({"track_ids": []})}, "the batch is empty"),
        (
            {"task": "popularity", "body": json.dumps({"track_ids": ids, "colour": 1})},
            "colour: unknown field",
        ),
        ({"task": "genre", "body": json.dumps([1, 2])}, "body: Input should be a valid dictionary"),
        ({"task": "genre", "body": json.dumps({"track_ids": [UNKNOWN_ID]})}, "none of the 1 track ids"),
        ({"task": "recommend", "body": json.dumps({"track_ids": [UNKNOWN_ID]})}, "none of the 1 track ids"),
    ]
    with running(scorer(stream_config, store)) as consumer:
        first = add(redis_client, stream_config, "genre", {"track_ids": ids})
        bad = [redis_client.xadd(stream_config.requests, fields).decode() for fields, _ in cases]
        last = add(redis_client, stream_config, "popularity", {"track_ids": ids})
        wait_for(lambda: answered(redis_client, stream_config) == len(cases) + 2, 30, "every entry answered")
        after = add(redis_client, stream_config, "recommend", {"track_ids": ids, "k": 3})  # it goes on
        wait_for(lambda: redis_client.xlen(stream_config.results) == 3, 30, "the entry after them")
    letters = outputs(redis_client, stream_config.dead_letter)
    assert [letter["input_id"] for letter in letters] == bad
    for letter, (fields, expected) in zip(letters, cases, strict=True):
        assert expected in letter["reason"], (letter["reason"], expected)
        assert letter["task"] == fields.get("task", "")  # the entry as given, to fix and send again
    # The reason is the API's own message for the same body.
    status, answer = api_answer(client, "genre", bad_energy)
    assert status == 422 and letters[5]["reason"] == answer["message"]
    assert [r["input_id"] for r in outputs(redis_client, stream_config.results)] == [first, last, after]
    assert consumer.dead_letters == len(cases) and consumer.results == 3
    assert group_info(redis_client, stream_config)["pending"] == 0


def test_metrics_count_entries_and_show_the_backlog_and_the_model(
    redis_client: Client, stream_config: StreamConfig, store: ModelStore, bundle: SongrecBundle
) -> None:
    ids = playlist_ids(bundle, size=2)
    consumer = scorer(stream_config, store)
    port = free_port()
    consumer.metrics.serve(port, host="127.0.0.1")
    try:
        consumer.ensure_group()
        for _ in range(3):
            add(redis_client, stream_config, "genre", {"track_ids": ids})
        add(redis_client, stream_config, "genre", "{")
        consumer.run(max_entries=4)
        for _ in range(5):  # not read yet: the lag
            add(redis_client, stream_config, "popularity", {"track_ids": ids})
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    finally:
        consumer.metrics.close()
        consumer.redis.close()
    for line in (
        'songrec_stream_entries_total{outcome="scored",task="genre"} 3.0',
        'songrec_stream_entries_total{outcome="dead_letter",task="genre"} 1.0',
        'songrec_stream_dead_lettered_total{reason="body"} 1.0',
        "songrec_stream_batch_duration_seconds_count 1.0",
        "songrec_stream_pending 0.0",
        "songrec_stream_lag 5.0",
        "songrec_stream_redis_up 1.0",
        'songrec_model_info{recommender="hybrid",source="test",version="1"} 1.0',
    ):
        assert line in text, line


def test_an_unreachable_redis_is_a_readable_error(stream_config: StreamConfig) -> None:
    config = dataclasses.replace(stream_config, url=f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(SongrecError, match="cannot reach Redis at redis://127.0.0.1"):
        run_stream(config, "one")


# --------------------------------------------------------------------------- one output per input


def test_a_stalled_consumer_whose_entries_were_claimed_writes_nothing_for_them(
    redis_client: Client, stream_config: StreamConfig, store: ModelStore, bundle: SongrecBundle
) -> None:
    config = dataclasses.replace(stream_config, claim_idle_ms=1)
    ids = playlist_ids(bundle, size=2)
    slow, other = scorer(config, store, "slow"), scorer(config, store, "other")
    slow.ensure_group()
    entry_ids = [add(redis_client, config, "genre", {"track_ids": ids}) for _ in range(10)]
    in_hand = slow.read(10)  # read, then "stalled" past claim_idle_ms
    assert len(in_hand) == 10
    time.sleep(0.05)
    assert other.claim() == 10  # the other consumer takes them over and answers them
    assert slow.handle(in_hand) == [False] * 10  # the stalled one wakes up: nothing written
    results = outputs(redis_client, config.results)
    assert sorted(r["input_id"] for r in results) == sorted(entry_ids)
    assert (other.results, slow.results, slow.skipped) == (10, 0, 10)
    assert group_info(redis_client, config)["pending"] == 0
    for consumer in (slow, other):
        consumer.redis.close()


def test_a_restarted_consumer_answers_what_it_had_read_under_its_name(
    redis_client: Client, stream_config: StreamConfig, store: ModelStore, bundle: SongrecBundle
) -> None:
    ids = playlist_ids(bundle, size=2)
    before = scorer(stream_config, store, "worker-1")
    before.ensure_group()
    entry_ids = [add(redis_client, stream_config, "popularity", {"track_ids": ids}) for _ in range(5)]
    assert len(before.read(5)) == 5  # ... and then the process died
    before.redis.close()
    again = scorer(stream_config, store, "worker-1")  # claim_idle_ms is a minute: no claim needed
    again.run(max_entries=5)
    again.redis.close()
    assert [r["input_id"] for r in outputs(redis_client, stream_config.results)] == entry_ids


def test_two_consumers_of_one_group_score_every_entry_once(
    redis_client: Client, stream_config: StreamConfig, store: ModelStore, bundle: SongrecBundle
) -> None:
    config = dataclasses.replace(stream_config, batch_size=20)
    ids = [playlist_ids(bundle, size=3, offset=i) for i in range(5)]
    tasks = ("genre", "popularity", "recommend")
    entry_ids: list[str] = []
    with running(scorer(config, store, "one")) as one, running(scorer(config, store, "two")) as two:
        for index in range(600):
            task = tasks[index % 3]
            body: dict[str, Any] = {"track_ids": ids[index % 5]}
            entry_ids.append(
                add(redis_client, config, task, body | ({"k": 5} if task == "recommend" else {}))
            )
            if index % 50 == 49:
                time.sleep(0.05)
        wait_for(lambda: answered(redis_client, config) == 600, 120, "600 entries answered")
    results = outputs(redis_client, config.results)
    assert sorted(r["input_id"] for r in results) == sorted(entry_ids)  # each once
    assert one.results > 0 and two.results > 0, (one.results, two.results)
    assert one.results + two.results == 600
    assert group_info(redis_client, config)["pending"] == 0


def test_a_champion_swap_mid_stream_loses_no_entry(
    redis_client: Client,
    stream_config: StreamConfig,
    two_bundle_files: dict[str, Path],
    bundle: SongrecBundle,
    base_config: ServeConfig,
) -> None:
    source = SwitchableSource(two_bundle_files, "1")
    swapping = stream_store(dataclasses.replace(base_config, reload_interval_seconds=0.05), source)
    swapping.start()
    ids = playlist_ids(bundle, size=3)
    entry_ids: list[str] = []
    try:
        with running(scorer(stream_config, swapping)):
            for index in range(400):
                task = ("genre", "recommend", "popularity")[index % 3]
                entry_ids.append(add(redis_client, stream_config, task, {"track_ids": ids}))
                if index == 150:  # the next entries are written once version 2 serves
                    source.champion = "2"
                    wait_for(
                        lambda: swapping.current is not None and swapping.current.version == "2", 60, "swap"
                    )
                if index % 20 == 19:
                    time.sleep(0.02)
            wait_for(lambda: answered(redis_client, stream_config) == 400, 120, "400 entries answered")
    finally:
        swapping.stop()
    results = outputs(redis_client, stream_config.results)
    assert [r["input_id"] for r in results] == entry_ids  # one consumer: in order, none lost
    versions = [r["model_version"] for r in results]
    assert versions == sorted(versions) and set(versions) == {"1", "2"}, Counter(versions)
    assert set(versions[151:]) == {"2"}  # written after the swap
    assert all(json.loads(r["result"])["model_version"] == r["model_version"] for r in results)
    assert swapping.swaps == 1


# --------------------------------------------------------------------------- real processes


@pytest.fixture
def stream_project(trained_project: Path, stream_config: StreamConfig, tmp_path: Path) -> Path:
    """The trained project's configuration on this test's streams, claiming after 1 s."""
    folder = tmp_path / "project"
    shutil.copytree(trained_project / "config", folder / "config")
    shutil.copy(trained_project / "params.yaml", folder / "params.yaml")
    edit_yaml(
        folder / "config" / "config.yaml",
        {
            "stream.requests": stream_config.requests,
            "stream.results": stream_config.results,
            "stream.dead_letter": stream_config.dead_letter,
            "stream.group": stream_config.group,
            "stream.batch_size": 50,
            "stream.block_ms": 100,
            "stream.claim_idle_ms": 1000,
            "stream.metrics_port": 0,
        },
    )
    return folder


@contextmanager
def stream_process(
    project: Path, bundle_file: Path, consumer: str, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    command = [str(BIN / "songrec"), "stream", "--bundle", str(bundle_file), "--consumer", consumer]
    with process_group(command, log, env={"SONGREC_STREAM_URL": REDIS_URL}, cwd=project) as process:
        yield process


def mixed_entries(client: Client, config: StreamConfig, bundle: SongrecBundle, count: int) -> list[str]:
    ids = [playlist_ids(bundle, size=3, offset=i) for i in range(5)]
    pipe = client.pipeline(transaction=False)
    for index in range(count):
        task = ("recommend", "genre", "popularity", "recommend")[index % 4]
        body = {"track_ids": ids[index % 5], "tracks": [feature_row(bundle, index % 50)]}
        pipe.xadd(
            config.requests,
            {"task": task, "body": json.dumps(body | ({"k": 10} if task == "recommend" else {}))},
        )
    return [entry_id.decode() for entry_id in pipe.execute()]


@pytest.mark.slow
def test_a_killed_consumer_s_entries_are_claimed_and_each_answered_once(
    redis_client: Client,
    stream_config: StreamConfig,
    stream_project: Path,
    bundle_file: Path,
    bundle: SongrecBundle,
    tmp_path: Path,
) -> None:
    redis_client.xgroup_create(stream_config.requests, stream_config.group, id="0", mkstream=True)
    entry_ids = mixed_entries(redis_client, stream_config, bundle, 3000)
    with stream_process(stream_project, bundle_file, "doomed", tmp_path / "doomed.log") as doomed:
        wait_for(lambda: redis_client.xlen(stream_config.results) >= 300, 120, "the first results")
        os.killpg(doomed.pid, signal.SIGKILL)  # mid-stream: a batch read and not written
        doomed.wait(10)
    orphans = redis_client.xpending_range(
        stream_config.requests, stream_config.group, "-", "+", 1000, "doomed"
    )
    assert orphans, "the kill left no entry pending: nothing to claim"
    print(f"killed after {redis_client.xlen(stream_config.results)} results, {len(orphans)} entries pending")
    log = tmp_path / "heir.log"
    with stream_process(stream_project, bundle_file, "heir", log) as heir:
        wait_for(lambda: answered(redis_client, stream_config) >= 3000, 180, "every entry answered")
        time.sleep(0.5)  # a second output, if any, would land now
        assert heir.poll() is None
    results = outputs(redis_client, stream_config.results)
    counts = Counter(r["input_id"] for r in results)
    assert set(counts) == set(entry_ids) and max(counts.values()) == 1, counts.most_common(3)
    assert redis_client.xlen(stream_config.dead_letter) == 0
    assert group_info(redis_client, stream_config)["pending"] == 0
    assert "claimed" in log.read_text()  # the heir took the orphans over


@pytest.mark.slow
def test_sigterm_stops_after_the_batch_in_hand_with_only_written_entries_acknowledged(
    redis_client: Client,
    stream_config: StreamConfig,
    stream_project: Path,
    bundle_file: Path,
    bundle: SongrecBundle,
    tmp_path: Path,
) -> None:
    redis_client.xgroup_create(stream_config.requests, stream_config.group, id="0", mkstream=True)
    mixed_entries(redis_client, stream_config, bundle, 4000)
    log = tmp_path / "stream.log"
    with stream_process(stream_project, bundle_file, "worker", log) as process:
        wait_for(lambda: redis_client.xlen(stream_config.results) >= 300, 120, "the first results")
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(15)
        seconds = time.monotonic() - started
    print(f"stopped {seconds:.2f} s after SIGTERM, with {redis_client.xlen(stream_config.results)} results")
    assert code == 0, log.read_text()[-3000:]
    group = group_info(redis_client, stream_config)
    assert group["pending"] == 0  # everything it read, it wrote and acknowledged
    delivered = [
        entry_id.decode()
        for entry_id, _ in redis_client.xrange(stream_config.requests, "-", group["last-delivered-id"])
    ]
    results = [r["input_id"] for r in outputs(redis_client, stream_config.results)]
    assert results == delivered  # acknowledged = written, in order, none twice
    assert len(delivered) < 4000, "it stopped before the end of the stream"
    assert "finishing the batch in hand" in log.read_text()
