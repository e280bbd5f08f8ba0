"""The recorder: a stream's lines are written with its position, a job's
``finished`` after its lines, nothing lost when a write is slow or fails,
and nothing written once the lease is lost."""

from __future__ import annotations

from pathlib import Path

import anyio

from smrun.events import Finished, LogLine, StatusChanged, Submitted
from smrun.recorder import StoreRecorder
from smrun.store import Batch, LeaseLost, RunRecord, RunStatus
from smrun.store.sqlite import SqliteStore
from smrun.types import JobResult, Outcome


class SlowStore(SqliteStore):
    """A real SQLite store whose writes take a while, and may fail for a time."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.delay = 0.0
        self.failures = 0
        self.writes = 0
        self.entered = anyio.Event()  # set once a write has begun

    async def write(self, run_id: str, batch: Batch, *, owner: str | None = None) -> list[int]:
        self.entered.set()
        await anyio.sleep(self.delay)
        if self.failures:
            self.failures -= 1
            raise OSError("disk away")
        self.writes += 1
        return await super().write(run_id, batch, owner=owner)


def line(job: str, stream: str, n: int) -> LogLine:
    return LogLine(job, stream=stream, instance=stream.rsplit("/", 1)[-1],
                   timestamp=1_700_000_000_000 + n, message=f"line {n}", time=1.0)


def finished(job: str) -> Finished:
    return Finished(job, JobResult(job, "training", f"{job}-x", Outcome.SUCCEEDED), time=2.0)


async def store_at(tmp_path: Path) -> SlowStore:
    store = SlowStore(tmp_path / "journal.sqlite")
    await store.open()
    await store.create_run(RunRecord("r", "jobs: []\n", "d", status=RunStatus.RUNNING))
    return store


async def test_lines_wait_for_their_position_and_are_written_with_it(tmp_path: Path) -> None:
    store = await store_at(tmp_path)
    recorder = StoreRecorder(store, "r")
    recorder.record(Submitted("a", kind="training", name="a-x", attached=False, time=0.5))
    recorder.record(line("a", "a-x/algo-1", 1))
    recorder.record(line("a", "a-x/algo-2", 1))
    await recorder.flush()
    assert [e.type for e in await store.events("r")] == ["submitted"]  # no position yet
    recorder.save_token("a", "a-x/algo-1", "t1")
    await recorder.flush()
    events = await store.events("r")
    assert [(e.type, e.record.get("stream")) for e in events] == [
        ("submitted", None), ("log", "a-x/algo-1")]
    assert await store.positions("r") == {"a": {"a-x/algo-1": "t1"}}
    # a crash now: algo-2's line was never written, nor its position: it is read again
    await recorder.close()
    assert len(await store.events("r")) == 2
    await store.close()


async def test_a_jobs_finished_comes_after_all_its_lines(tmp_path: Path) -> None:
    store = await store_at(tmp_path)
    recorder = StoreRecorder(store, "r")
    recorder.record(line("a", "a-x/algo-1", 1))
    recorder.record(line("b", "b-x/algo-1", 1))
    recorder.record(StatusChanged("a", "Completed", time=1.5))
    recorder.record(finished("a"))
    await recorder.close()
    events = await store.events("r")
    assert [(e.type, e.job) for e in events] == [("status", "a"), ("log", "a"), ("finished", "a")]
    jobs = {j.job: j for j in await store.jobs("r")}
    # the result has no status: the one recorded before stays
    assert jobs["a"].outcome == "Succeeded" and jobs["a"].status == "Completed"
    await store.close()


async def test_closing_while_a_slow_write_is_in_flight_loses_nothing(tmp_path: Path) -> None:
    store = await store_at(tmp_path)
    store.delay = 0.3
    recorder = StoreRecorder(store, "r", interval=0.0)
    async with anyio.create_task_group() as tg:
        tg.start_soon(recorder.run)
        recorder.record(StatusChanged("a", "InProgress", time=1.0))
        with anyio.fail_after(5):
            await store.entered.wait()  # the writer is inside its slow write
        recorder.record(finished("a"))  # queued behind it
        await recorder.close()
        tg.cancel_scope.cancel()
    assert [e.type for e in await store.events("r")] == ["status", "finished"]
    await store.close()


async def test_a_failing_database_delays_the_writes_and_drops_nothing(tmp_path: Path) -> None:
    store = await store_at(tmp_path)
    store.failures = 3
    errors: list[BaseException] = []
    recorder = StoreRecorder(store, "r", on_error=errors.append)
    recorder.record(StatusChanged("a", "InProgress", time=1.0))
    recorder.record(line("a", "a-x/algo-1", 1))
    recorder.save_token("a", "a-x/algo-1", "t1")
    with anyio.fail_after(10):
        await recorder.flush()
    assert len(errors) == 3
    assert [e.type for e in await store.events("r")] == ["status", "log"]
    await store.close()


async def test_after_the_lease_is_lost_nothing_more_is_written(tmp_path: Path) -> None:
    store = await store_at(tmp_path)
    lost: list[bool] = []
    recorder = StoreRecorder(store, "r", owner="me", on_lost=lambda: lost.append(True))
    recorder.record(StatusChanged("a", "InProgress", time=1.0))
    await recorder.flush()  # never claimed by "me": the write is refused whole
    assert lost == [True] and recorder.lost
    recorder.record(finished("a"))
    await recorder.close()
    assert await store.events("r") == []
    try:
        await store.write("r", Batch(events=[{"type": "x", "job": ""}]), owner="me")
    except LeaseLost:
        pass
    else:
        raise AssertionError("the store let a daemon without the lease write")
    await store.close()
