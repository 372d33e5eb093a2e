"""`songrec stream`: requests scored from a Redis Stream with the model the API serves.

Producers XADD entries with two fields: `task` (recommend, genre or popularity) and `body`, the
API's JSON request body for that route. Scorers share a consumer group (`stream.group`). Each
reads micro-batches (XREADGROUP, up to `stream.batch_size` entries, waiting up to
`stream.block_ms`), checks and scores them (stream_scoring.py) and appends one entry per input:
a result to `stream.results`, or, for an entry the API would refuse, a dead letter to
`stream.dead_letter` with the reason.

Delivery is at least once in and exactly once out. A batch's outputs and the acknowledgement of
its inputs are written by one Lua script, which Redis runs atomically:
- A scorer that dies before the script leaves its entries pending. Another scorer claims them
  once they have been idle `stream.claim_idle_ms` (XAUTOCLAIM, at start and then periodically).
- A scorer that dies after the script has written and acknowledged them all: nothing is redone.
- The script writes an entry's output only while the entry is still pending on this scorer. A
  scorer that stalled so long that another claimed its entries writes nothing for them, so no
  input gets two outputs. This needs no record of finished ids, which would grow without end.

Hot swap: the API's ModelStore (model_store.py) follows the champion in a background thread.
Each batch reads `store.current` once and is answered by that model to the end, so a swap
loses no entry and splits no batch.

On SIGTERM or SIGINT a scorer finishes the batch in hand (scores, writes and acknowledges it),
acknowledges nothing else, and returns.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import redis

from songrec.config.stage_configs import StreamConfig
from songrec.core.errors import SongrecError
from songrec.serving.model_store import ModelStore
from songrec.serving.schemas import RequestModels, build_request_models
from songrec.serving.stream_metrics import GroupState, StreamMetrics
from songrec.serving.stream_scoring import UNKNOWN_TASK, Job, Output, parse, score

log = logging.getLogger(__name__)

PROGRESS_SECONDS = 10.0  # a progress line this often
RETRY_SECONDS = 1.0  # after Redis went away, try again this often

Entry = tuple[bytes, dict[bytes, bytes]]

# KEYS: the input stream, the results stream, the dead-letter stream.
# ARGV: the group, this consumer, then for each entry: its id, 2 (a result) or 3 (a dead letter),
# its number of fields n, and n field/value pairs. Returns 1 per entry written, 0 per entry
# skipped (no longer pending on this consumer: another has claimed or answered it).
WRITE_SCRIPT = """
local group, consumer = ARGV[1], ARGV[2]
local written, acked = {}, {}
local i = 3
while i <= #ARGV do
  local id, target, n = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local pending = redis.call('XPENDING', KEYS[1], group, id, id, 1)
  if pending[1] ~= nil and pending[1][2] == consumer then
    local fields = {}
    for j = 1, 2 * n do fields[j] = ARGV[i + 2 + j] end
    redis.call('XADD', KEYS[target], '*', unpack(fields))
    acked[#acked + 1] = id
    written[#written + 1] = 1
  else
    written[#written + 1] = 0
  end
  i = i + 3 + 2 * n
end
for start = 1, #acked, 500 do
  redis.call('XACK', KEYS[1], group, unpack(acked, start, math.min(start + 499, #acked)))
end
return written
"""


class StreamScorer:
    """One consumer of the group: reads, claims, scores and writes until stopped."""

    def __init__(
        self,
        config: StreamConfig,
        store: ModelStore,
        consumer: str,
        *,
        client: redis.Redis | None = None,
        models: RequestModels | None = None,
        metrics: StreamMetrics | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.consumer = consumer
        self.redis = client or connect(config)
        self.models = models or build_request_models(config.serve.schema, config.serve)
        self.metrics = metrics or StreamMetrics(store, self.group_state)
        self.stopping = threading.Event()
        self.handled = 0  # entries finished: written, or skipped as another consumer's
        self.results = 0
        self.dead_letters = 0
        self.skipped = 0
        self._write = self.redis.register_script(WRITE_SCRIPT)
        self._keys = [config.requests, config.results, config.dead_letter]

    # ----------------------------------------------------------------------- the loop

    def stop(self) -> None:
        """Finish the batch in hand, then return from run()."""
        self.stopping.set()

    def run(self, max_entries: int | None = None) -> None:
        """Score until stop() (or `max_entries` entries are finished)."""
        claim_every = min(max(self.config.claim_idle_ms / 2000, 0.1), 30.0)
        setup, next_claim = True, 0.0
        last_log, handled_at_log = time.monotonic(), self.handled
        while not self.stopping.is_set() and not self._reached(max_entries):
            try:
                if setup:  # the group, then what this name read and never wrote (a restart)
                    self.ensure_group()
                    self.drain_own(max_entries)
                    setup = False
                if time.monotonic() >= next_claim:
                    self.claim(max_entries)
                    next_claim = time.monotonic() + claim_every
                entries = self.read(self._count(max_entries))
                if entries:
                    self.handle(entries)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("Redis: %s; trying again in %.0f s", exc, RETRY_SECONDS)
                setup = True
                self.stopping.wait(RETRY_SECONDS)
            except redis.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                log.warning("the group %s is gone: creating it again", self.config.group)
                setup = True
            now = time.monotonic()
            if now - last_log >= PROGRESS_SECONDS:
                self._log_progress((self.handled - handled_at_log) / (now - last_log))
                last_log, handled_at_log = now, self.handled

    def ensure_group(self) -> None:
        """Create the group (and the stream) if missing; an existing group keeps its position."""
        try:
            self.redis.xgroup_create(self.config.requests, self.config.group, id="0", mkstream=True)
            log.info("created the consumer group %s on %s", self.config.group, self.config.requests)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read(self, count: int) -> list[Entry]:
        """New entries (XREADGROUP >), waiting up to block_ms for the first."""
        reply: Any = self.redis.xreadgroup(
            self.config.group,
            self.consumer,
            {self.config.requests: ">"},
            count=count,
            block=self.config.block_ms,
        )
        return list(reply[0][1]) if reply else []

    def drain_own(self, max_entries: int | None = None) -> None:
        """Answer the entries pending on this consumer's own name (read before a crash or restart)."""
        cursor: bytes | str = "0"
        while not self.stopping.is_set() and not self._reached(max_entries):
            reply: Any = self.redis.xreadgroup(
                self.config.group,
                self.consumer,
                {self.config.requests: cursor},
                count=self._count(max_entries),
            )
            entries = list(reply[0][1]) if reply else []
            if not entries:
                return
            log.info("answering %d entries pending on this consumer's name", len(entries))
            self.handle(entries)
            cursor = entries[-1][0]

    def claim(self, max_entries: int | None = None) -> int:
        """Take over and answer entries idle longer than claim_idle_ms (their consumer is gone)."""
        cursor: bytes | str = "0-0"
        claimed = 0
        while not self.stopping.is_set() and not self._reached(max_entries):
            claimed_reply: Any = self.redis.xautoclaim(
                self.config.requests,
                self.config.group,
                self.consumer,
                self.config.claim_idle_ms,
                cursor,
                count=self._count(max_entries),
            )
            cursor, entries, deleted = claimed_reply
            if deleted:  # Redis has dropped them from the pending list: there is nothing to answer
                log.warning("%d pending entries were deleted from the stream before an answer", len(deleted))
                self.metrics.entries.labels(UNKNOWN_TASK, "deleted").inc(len(deleted))
            if entries:
                log.info(
                    "claimed %d entries idle for more than %d ms", len(entries), self.config.claim_idle_ms
                )
                self.metrics.claimed.inc(len(entries))
                claimed += len(entries)
                self.handle(list(entries))
            if cursor in (b"0-0", "0-0"):
                break
        return claimed

    # ----------------------------------------------------------------------- one batch

    def handle(self, entries: Sequence[Entry]) -> list[bool]:
        """Check, score and write a batch; for each entry, whether this consumer wrote its output."""
        started = time.perf_counter()
        served = self.store.current  # read once: the whole batch is answered by this model
        if served is None:  # pragma: no cover - run_stream starts the store first
            raise SongrecError("no model is loaded")
        refused: dict[str, Output] = {}
        jobs: list[Job] = []
        order: list[str] = []
        for raw_id, fields in entries:
            input_id = raw_id.decode()
            order.append(input_id)
            parsed = parse(input_id, fields, self.models)
            if isinstance(parsed, Job):
                jobs.append(parsed)
            else:
                refused[input_id] = parsed
        answered = score(jobs, served) if jobs else {}
        outputs = [answered.get(input_id) or refused[input_id] for input_id in order]
        written = self.write(outputs)
        for output, done in zip(outputs, written, strict=True):
            if not done:
                self.skipped += 1
                self.metrics.entries.labels(output.task, "skipped").inc()
            elif output.dead:
                self.dead_letters += 1
                self.metrics.entries.labels(output.task, "dead_letter").inc()
                self.metrics.dead_lettered.labels(output.kind or "other").inc()
            else:
                self.results += 1
                self.metrics.entries.labels(output.task, "scored").inc()
        self.handled += len(outputs)
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        return written

    def write(self, outputs: Sequence[Output]) -> list[bool]:
        """Append the outputs and acknowledge their inputs, atomically (WRITE_SCRIPT)."""
        if not outputs:
            return []
        args: list[Any] = [self.config.group, self.consumer]
        for output in outputs:
            args += [output.input_id, 3 if output.dead else 2, len(output.fields)]
            for name, value in output.fields.items():
                args += [name, value]
        flags = self._write(keys=self._keys, args=args)
        return [bool(flag) for flag in flags]

    # ----------------------------------------------------------------------- state

    def group_state(self) -> GroupState:
        """The group's pending count and lag (XINFO GROUPS)."""
        groups: Any = self.redis.xinfo_groups(self.config.requests)
        for group in groups:
            name = group["name"]
            if (name.decode() if isinstance(name, bytes) else name) == self.config.group:
                lag = group.get("lag")
                return GroupState(pending=int(group["pending"]), lag=None if lag is None else int(lag))
        return GroupState(pending=0, lag=None)

    def _count(self, max_entries: int | None) -> int:
        if max_entries is None:
            return self.config.batch_size
        return max(1, min(self.config.batch_size, max_entries - self.handled))

    def _reached(self, max_entries: int | None) -> bool:
        return max_entries is not None and self.handled >= max_entries

    def _log_progress(self, rate: float) -> None:
        try:
            state = self.group_state()
            backlog = f"pending {state.pending}, lag {'?' if state.lag is None else state.lag}"
        except redis.RedisError as exc:
            backlog = f"backlog unknown ({type(exc).__name__})"
        current = self.store.current
        log.info(
            "%.0f entries/s; %s; %d results, %d dead-lettered, %d skipped so far; model %s",
            rate,
            backlog,
            self.results,
            self.dead_letters,
            self.skipped,
            None if current is None else current.version,
        )


def connect(config: StreamConfig) -> redis.Redis:
    """A client of the stream's Redis (bytes in and out: a body that is not UTF-8 is a dead
    letter, not a failed read)."""
    return redis.Redis.from_url(
        config.url,
        socket_connect_timeout=5,
        socket_timeout=config.block_ms / 1000 + 30,
        health_check_interval=30,
    )
