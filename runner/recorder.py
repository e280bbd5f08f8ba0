"""StoreRecorder: what a run publishes, written to a :class:`smrun.store.Store`.

A run's bus calls :meth:`StoreRecorder.record` for every event; the log
followers call :meth:`StoreRecorder.save_token` once the lines of a read are
published. Both only queue: a writer task (:meth:`StoreRecorder.run`) writes
what is queued in one transaction at a time, so the engine never waits for
the database, and a slow database makes the writes larger, not the run slower.

Exactly once, across a crash: a stream's log lines wait until its position
is saved, and are written in the same transaction as that position. After a
crash the stream resumes from the last position written, which covers
exactly the lines written; lines read after it were not written, and are
read again. Every other event is written as soon as it comes, but a job's
``finished`` waits for the job's pending lines, so the lines come first.

Error handling: a write that fails for another reason than the lease is
tried again (with backoff, nothing dropped); :class:`smrun.store.LeaseLost`
calls ``on_lost`` once and stops writing, since another daemon now records
the run.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

import anyio

from smrun.console import redact
from smrun.events import Event, Finished, LogLine, to_record
from smrun.store import Batch, JobRecord, LeaseLost, Store

WRITE_INTERVAL = 0.05  # gather what comes within this long into one transaction
RETRY_MAX = 10.0


def job_update(run_id: str, record: Mapping[str, Any]) -> JobRecord | None:
    """What an event record changes in its job's row (None: nothing)."""
    kind = record["type"]
    if kind == "submitted":
        return JobRecord(run_id, record["job"], kind=record["kind"], name=record["name"])
    if kind == "status":
        return JobRecord(run_id, record["job"], status=record["status"])
    if kind == "finished":
        result = record["result"]
        return JobRecord(run_id, record["job"], kind=result["kind"], name=result["name"],
                         status=result["status"], outcome=result["outcome"], result=result)
    return None


class StoreRecorder:
    """The :class:`smrun.run.RunLog` of a run recorded in a store."""

    def __init__(
        self,
        store: Store,
        run_id: str,
        *,
        owner: str | None = None,
        positions: Mapping[str, Mapping[str, str]] | None = None,
        on_written: Callable[[int], None] | None = None,
        on_lost: Callable[[], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        interval: float = WRITE_INTERVAL,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.owner = owner
        self._positions = {job: dict(streams) for job, streams in (positions or {}).items()}
        self._lines: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        self._batch = Batch()
        self._wake = anyio.Event()
        self._flushing = anyio.Lock()
        self._on_written = on_written
        self._on_lost = on_lost
        self._on_error = on_error
        self._interval = interval
        self.lost = False

    # --- the RunLog --------------------------------------------------------

    def record(self, event: Event) -> None:
        record = redact(to_record(event))
        if isinstance(event, LogLine):
            self._lines[(event.job, event.stream)].append(record)
            return
        if isinstance(event, Finished):  # its lines first
            for key in [k for k in self._lines if k[0] == event.job]:
                self._batch.events.extend(self._lines.pop(key))
        self._batch.events.append(record)
        update = job_update(self.run_id, record)
        if update is not None:
            self._batch.jobs.append(update)
        self._poke()

    def tokens(self, job: str) -> dict[str, str]:
        return dict(self._positions.get(job, {}))

    def save_token(self, job: str, stream: str, token: str) -> None:
        self._positions.setdefault(job, {})[stream] = token
        self._batch.events.extend(self._lines.pop((job, stream), []))
        self._batch.positions.append((job, stream, token))
        self._poke()

    def append(self, record: dict[str, Any]) -> None:
        """Write a record that is no job's event (the run's own ``run`` records)."""
        self._batch.events.append(record)
        self._poke()

    # --- writing -------------------------------------------------------------

    async def run(self) -> None:
        """Write what is queued until cancelled (then :meth:`close` writes the rest)."""
        while not self.lost:
            await self._wake.wait()
            self._wake = anyio.Event()
            await anyio.sleep(self._interval)
            await self.flush()

    async def flush(self) -> None:
        """Write everything queued so far (lines waiting for a position stay
        queued). One flush at a time: a flush returns once what was queued
        when it was called is written, even if another flush had taken it."""
        async with self._flushing:
            delay = 0.1
            while self._batch and not self.lost:
                batch, self._batch = self._batch, Batch()
                try:
                    ids = await self.store.write(self.run_id, batch, owner=self.owner)
                except LeaseLost:
                    self.lost = True
                    if self._on_lost is not None:
                        self._on_lost()
                    return
                except Exception as error:  # the database is away: keep it all, try again
                    self._batch = _joined(batch, self._batch)
                    if self._on_error is not None:
                        self._on_error(error)
                    await anyio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX)
                    continue
                if ids and self._on_written is not None:
                    self._on_written(ids[-1])

    async def close(self) -> None:
        """Write what is left; shielded, so it runs on cancellation too. Lines
        still waiting for their position are dropped: the job did not end
        (its ``finished`` would have taken them), so whoever drives it next
        reads them again from the position written."""
        with anyio.CancelScope(shield=True):
            self._lines.clear()
            await self.flush()

    def _poke(self) -> None:
        self._wake.set()


def run_record(status: str, **fields: Any) -> dict[str, Any]:
    """The record of a change of the run itself (type ``run``)."""
    return {"type": "run", "job": "", "time": time.time(), "status": status, **fields}


def _joined(first: Batch, then: Batch) -> Batch:
    return Batch(events=first.events + then.events, jobs=first.jobs + then.jobs,
                 positions=first.positions + then.positions)

