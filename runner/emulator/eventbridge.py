"""EventBridge: every state change of every job kind, published as SageMaker does.

A runner with a thousand jobs learns of their changes from events rather than
by asking, and keeps a slow reconciling poll for the events that never come.
So, while it publishes, the emulator sends one event for each
change of status or secondary status of every training, processing,
transform, tuning and labeling job and every endpoint, at the moment the
change happens on the emulator's clock (the kinds announce their changes from
the scheduler, see :class:`~smrun.emulator.resources.StateChange`).

Each event is AWS's: ``Source`` ``aws.sagemaker``, the kind's ``DetailType``
(``SageMaker Training Job State Change``, ...), ``Resources`` the resource's
ARN, ``Time`` the moment of the change, and ``Detail`` the resource's
Describe* output at that moment, times in epoch milliseconds as AWS's sample
events carry them, with ``LastModifiedTime`` added where the Describe output
has none and ``Tags`` as a map of key to value. AWS documents a sample event
for training, tuning, transform and endpoint changes; that the others mirror
their Describe* output too is this emulator's guess. (One AWS sample shows an
endpoint's status as ``IN_SERVICE``; this emulator sends the API's
``InService``.)

It publishes in one of two ways:

- given an EventBridge endpoint (``url``: moto, or a real one), through
  ``PutEvents`` calls (an aiobotocore client, SigV4-signed with dummy keys);
- without one, to the emulator's own bus (:mod:`smrun.emulator.bus`), in
  process, whenever that bus has an enabled rule with a target: the path
  ``smrun events setup`` makes, from the SageMaker of the emulator to its SQS.

Either way events go out in the background, never in the way of a request: a
change is queued and a few workers send batches of up to 10. Each resource is
always sent by the same worker, one batch at a time, so its events go out in
the order they happened. A failed call or entry is tried again, up to
``MAX_ATTEMPTS`` in all with a doubling pause; what still fails is counted
and given up.

:class:`EventFaults` (seeded, repeatable) makes delivery as imperfect as a
runner must expect: ``duplicate`` sends an event twice (SageMaker may send
several per change), ``drop`` never sends it, ``reorder`` holds it back and
sends it after the resource's next event. An event of a settled status (a
terminal one) is never held, so a held event always has a successor.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import zlib
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, fields
from typing import Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from smrun.emulator.bus import EventBus
from smrun.emulator.resources import SageMaker, StateChange

SOURCE = "aws.sagemaker"
MAX_ENTRIES = 10  # PutEvents takes at most 10 entries a call
MAX_BATCH_BYTES = 200_000  # under PutEvents' 256 KB a call
MAX_ATTEMPTS = 4
RETRY_DELAY = 0.05  # seconds before the second attempt; doubled for each later one
WORKERS = 4
ACCESS_KEY = "testing"  # dummy credentials: signed, as every AWS call is, but by nobody

Entry = dict[str, Any]


@dataclass
class EventFaults:
    """How imperfectly events are delivered; each a probability per event."""

    duplicate: float = 0.0  # sent twice
    drop: float = 0.0  # never sent
    reorder: float = 0.0  # held back, and sent after the resource's next event
    seed: int | None = None  # seeds the draws, for repeatable runs

    def __post_init__(self) -> None:
        for name in ("duplicate", "drop", "reorder"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} is a probability, between 0 and 1")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EventFaults:
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown event faults: {', '.join(sorted(unknown))}")
        return cls(**data)


@dataclass
class EventCounters:
    changes: int = 0  # state changes seen while publishing
    queued: int = 0  # events put in the queue (changes, less dropped, plus duplicates)
    calls: int = 0  # PutEvents requests made (or batches handed to the own bus)
    sent: int = 0  # events PutEvents (or the own bus) accepted
    retried: int = 0  # events sent again after a failed call or entry
    failed: int = 0  # events given up after MAX_ATTEMPTS
    dropped: int = 0  # by the drop fault
    duplicated: int = 0  # by the duplicate fault
    reordered: int = 0  # held back by the reorder fault

    def to_json(self) -> dict[str, int]:
        return asdict(self)


class EventPublisher:
    """Sends the StateChanges of ``sagemaker`` to an EventBridge at ``url`` or,
    with no url, to ``bus`` while it has listeners."""

    def __init__(
        self,
        sagemaker: SageMaker,
        *,
        url: str | None = None,
        bus: EventBus | None = None,
        faults: EventFaults | None = None,
        workers: int = WORKERS,
    ) -> None:
        self.sagemaker = sagemaker
        self.url = url
        self.bus = bus
        self.counters = EventCounters()
        self._faults = EventFaults()
        self._rng = random.Random()
        self.faults = faults or EventFaults()
        self._queues: list[asyncio.Queue[Entry]] = [asyncio.Queue() for _ in range(workers)]
        self._held: dict[str, list[Entry]] = {}  # by ARN: events the reorder fault holds back
        self._tasks: list[asyncio.Task[None]] = []
        self._clients: dict[str, Any] = {}  # by endpoint URL
        self._stack = AsyncExitStack()
        self._client_lock = asyncio.Lock()

    @property
    def faults(self) -> EventFaults:
        return self._faults

    @faults.setter
    def faults(self, faults: EventFaults) -> None:
        self._faults = faults
        self._rng = random.Random(faults.seed)

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    @property
    def local(self) -> bool:
        """Whether events go to the emulator's own bus (no url, and a listener on it)."""
        return self.url is None and self.bus is not None and self.bus.listening

    @property
    def publishing(self) -> bool:
        return self.url is not None or self.local

    def pending(self) -> int:
        """Events queued or held back, not yet sent or given up."""
        return sum(q.qsize() for q in self._queues) + sum(len(h) for h in self._held.values())

    def report(self) -> dict[str, Any]:
        """What ``GET /_emulator/events`` answers."""
        report: dict[str, Any] = {
            "url": self.url,
            "local": self.local,
            "faults": self._faults.to_json(),
            "counters": self.counters.to_json(),
            "pending": self.pending(),
        }
        if self.bus is not None:
            report["bus"] = self.bus.counters.to_json()
        return report

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        """Start the workers (in the running event loop)."""
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._work(q)) for q in self._queues]

    async def stop(self) -> None:
        """Stop the workers and close the clients; unsent events are dropped."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._clients = {}
        await self._stack.aclose()
        self._stack = AsyncExitStack()

    async def drain(self, timeout: float = 30.0) -> None:
        """Send what is held back, then wait until every queued event was
        sent or given up (``TimeoutError`` after ``timeout`` seconds)."""
        if not self._tasks:
            raise RuntimeError("the publisher is not running: start the emulator first")
        for arn in list(self._held):
            self._enqueue(arn, self._held.pop(arn))
        await asyncio.wait_for(asyncio.gather(*(q.join() for q in self._queues)), timeout)

    # -- taking changes in -------------------------------------------------------

    def submit(self, change: StateChange) -> None:
        """Queue the event for ``change`` (a SageMaker listener: it must not block)."""
        if not self.publishing:
            return
        self.counters.changes += 1
        entry = self._entry(change)
        faults, rng = self._faults, self._rng
        # three draws an event, in a fixed order, keep a seeded run repeatable
        drop, duplicate, reorder = rng.random(), rng.random(), rng.random()
        held = self._held.pop(change.arn, None)
        if drop < faults.drop:
            self.counters.dropped += 1
            if held is not None:
                self._enqueue(change.arn, held)
            return
        copies = [entry, entry] if duplicate < faults.duplicate else [entry]
        self.counters.duplicated += len(copies) - 1
        if held is None and not change.settled and reorder < faults.reorder:
            self.counters.reordered += 1
            self._held[change.arn] = copies
            return
        self._enqueue(change.arn, copies)
        if held is not None:
            self._enqueue(change.arn, held)

    def _entry(self, change: StateChange) -> Entry:
        protocol = self.sagemaker.protocol
        operation = protocol.operation(change.describe)
        if operation is None:
            raise ValueError(f"SageMaker has no operation {change.describe}")
        shape = operation.output_shape
        detail = protocol.to_wire(change.detail(), shape, shape.name, epoch_ms=True)
        detail.setdefault("LastModifiedTime", round(change.at * 1000))
        detail["Tags"] = {t["Key"]: t["Value"] for t in self.sagemaker.tags.get(change.arn, [])}
        return {
            "Source": SOURCE,
            "DetailType": change.detail_type,
            "Resources": [change.arn],
            "Detail": json.dumps(detail, separators=(",", ":")),
            "Time": dt.datetime.fromtimestamp(change.at, tz=dt.timezone.utc),
        }

    def _enqueue(self, arn: str, entries: list[Entry]) -> None:
        queue = self._queues[zlib.crc32(arn.encode()) % len(self._queues)]
        for entry in entries:
            queue.put_nowait(entry)
        self.counters.queued += len(entries)

    # -- sending -------------------------------------------------------------------

    async def _work(self, queue: asyncio.Queue[Entry]) -> None:
        while True:
            batch = [await queue.get()]
            size = len(batch[0]["Detail"])
            while len(batch) < MAX_ENTRIES and not queue.empty():
                entry = queue.get_nowait()
                batch.append(entry)
                size += len(entry["Detail"])
                if size > MAX_BATCH_BYTES:
                    break
            try:
                await self._send(batch)
            finally:
                for _ in batch:
                    queue.task_done()

    async def _send(self, batch: list[Entry]) -> None:
        pending = batch
        for attempt in range(MAX_ATTEMPTS):
            if attempt:
                self.counters.retried += len(pending)
                await asyncio.sleep(RETRY_DELAY * 2 ** (attempt - 1))
            if not self.publishing:
                break  # publishing was turned off meanwhile
            try:
                results = await self._put(pending)
            except (BotoCoreError, ClientError, aiohttp.ClientError, OSError, TimeoutError):
                continue
            failed = [e for e, r in zip(pending, results, strict=False) if r.get("ErrorCode")]
            self.counters.sent += len(pending) - len(failed)
            pending = failed
            if not pending:
                return
        self.counters.failed += len(pending)

    async def _put(self, entries: list[Entry]) -> list[dict[str, Any]]:
        """One PutEvents: to the url if there is one, else to the own bus; a
        result per entry."""
        self.counters.calls += 1
        if self.url is None:
            assert self.bus is not None  # publishing without a url: to the bus
            return self.bus.put_events(entries, trusted=True)
        client = await self._client(self.url)
        response = await client.put_events(Entries=entries)
        results: list[dict[str, Any]] = response.get("Entries", [])
        return results

    async def _client(self, url: str) -> Any:
        async with self._client_lock:
            client = self._clients.get(url)
            if client is None:
                config = AioConfig(
                    retries={"total_max_attempts": 1},  # retried here, and counted
                    connect_timeout=5,
                    read_timeout=10,
                    max_pool_connections=len(self._queues),
                )
                client = await self._stack.enter_async_context(
                    get_session().create_client(
                        "events",
                        region_name=self.sagemaker.region,
                        endpoint_url=url,
                        aws_access_key_id=ACCESS_KEY,
                        aws_secret_access_key=ACCESS_KEY,
                        config=config,
                    )
                )
                self._clients[url] = client
            return client
