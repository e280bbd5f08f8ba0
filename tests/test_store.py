"""The store interface (runner/store), one suite for both backends: SQLite in a
temporary directory and a real PostgreSQL server (tests/postgres.py).

Leases are expired without sleeping: a negative ttl gives a lease that has
already run out, on whichever clock the backend uses."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from smrun.journal import Journal
from smrun.store import (
    Batch,
    JobRecord,
    LeaseLost,
    RunConflict,
    RunRecord,
    RunStatus,
    Store,
    StoredEvent,
)
from smrun.store.open import open_store
from smrun.store.postgres import PostgresStore
from smrun.store.sqlite import SqliteStore

# both classes are Stores (mypy checks this line)
BACKENDS: tuple[type[Store], ...] = (SqliteStore, PostgresStore)

NewStore = Callable[[], Store]
LONG = 60.0  # a lease that holds for the whole test
EXPIRED = -1.0  # a lease that has run out already


@pytest.fixture(params=["sqlite", "postgres"])
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> NewStore:
    """Makes another (unopened) store object on this test's database."""
    if request.param == "sqlite":
        target = str(tmp_path / "state")
    else:
        target = request.getfixturevalue("postgres_url")
    return lambda: open_store(target)


@pytest.fixture
async def store(new_store: NewStore) -> AsyncIterator[Store]:
    opened = new_store()
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def other(new_store: NewStore) -> AsyncIterator[Store]:
    """A second store on the same database: another daemon."""
    opened = new_store()
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


def new_run(
    run_id: str, manifest: str = "jobs:\n  train: {kind: training}\n", **fields: Any
) -> RunRecord:
    digest = hashlib.sha256(manifest.encode()).hexdigest()
    return RunRecord(run_id=run_id, manifest=manifest, digest=digest, **fields)


def event(job: str, kind: str, n: int, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "job": job, "time": 1700000000.0 + n, "n": n, **fields}


async def add_runs(store: Store, *specs: tuple[str, float, RunStatus]) -> None:
    for run_id, created, status in specs:
        await store.create_run(new_run(run_id, created=created, status=status))


# --- runs --------------------------------------------------------------------------


async def test_create_run_is_idempotent(store: Store) -> None:
    before = time.time()
    stored, created = await store.create_run(
        new_run("r1", source="runs/a.yaml", options={"on_cancel": "stop"})
    )
    assert created
    assert (stored.run_id, stored.source) == ("r1", "runs/a.yaml")
    assert stored.options == {"on_cancel": "stop"}
    assert stored.status is RunStatus.PENDING
    assert stored.owner is None and stored.lease_until is None and not stored.stop_requested
    assert before - 5 <= stored.created <= time.time() + 5
    assert stored.updated == stored.created

    again, created = await store.create_run(new_run("r1", source="api"))
    assert not created
    assert again == stored  # the first submission, as stored

    with pytest.raises(RunConflict):
        await store.create_run(new_run("r1", manifest="jobs: {}\n"))
    assert await store.get_run("r1") == stored
    assert await store.get_run("nope") is None


async def test_create_run_keeps_given_fields(store: Store) -> None:
    run = new_run(
        "r1", created=100.5, updated=101.0, status=RunStatus.RUNNING, summary={"succeeded": 1}
    )
    stored, created = await store.create_run(run)
    assert created
    assert stored == run
    assert await store.get_run("r1") == run


async def test_list_runs_newest_first_paged_and_filtered(store: Store) -> None:
    await add_runs(
        store,
        ("a", 1.0, RunStatus.SUCCEEDED),
        ("b", 2.0, RunStatus.RUNNING),
        ("c", 3.0, RunStatus.PENDING),
        ("e", 4.0, RunStatus.FAILED),  # e and d were created at once: by run_id
        ("d", 4.0, RunStatus.RUNNING),
        ("f", 5.0, RunStatus.PENDING),
    )
    everything = [run.run_id for run in await store.list_runs()]
    assert everything == ["f", "e", "d", "c", "b", "a"]

    pages: list[list[str]] = []
    before: str | None = None
    while page := await store.list_runs(limit=2, before=before):
        pages.append([run.run_id for run in page])
        before = page[-1].run_id
    assert pages == [["f", "e"], ["d", "c"], ["b", "a"]]
    assert [run.run_id for run in await store.list_runs(limit=3, before="e")] == ["d", "c", "b"]

    unfinished = [RunStatus.PENDING, RunStatus.RUNNING]
    assert [run.run_id for run in await store.list_runs(status=unfinished)] == ["f", "d", "c", "b"]
    assert [r.run_id for r in await store.list_runs(status=unfinished, before="d", limit=1)] == [
        "c"
    ]
    assert [run.run_id for run in await store.list_runs(status=[RunStatus.STOPPED])] == []
    assert await store.list_runs(limit=0) == []


async def test_update_run_sets_the_fields_given(store: Store) -> None:
    stored, _ = await store.create_run(new_run("r1", created=10.0, updated=10.0))
    await store.update_run("r1", status=RunStatus.RUNNING)
    running = await store.get_run("r1")
    assert running is not None
    assert running.status is RunStatus.RUNNING
    assert running.updated > stored.updated
    assert (running.ended, running.summary, running.stop_requested) == (None, {}, False)

    await store.update_run(
        "r1", status=RunStatus.SUCCEEDED, ended=1234.5, summary={"succeeded": 2, "failed": 0}
    )
    await store.update_run("r1", stop_requested=True)
    await store.update_run("r1", options={"on_cancel": "detach"})
    done = await store.get_run("r1")
    assert done is not None
    assert done.status is RunStatus.SUCCEEDED and done.status.finished
    assert done.ended == 1234.5
    assert done.summary == {"succeeded": 2, "failed": 0}
    assert done.stop_requested
    assert done.options == {"on_cancel": "detach"}
    assert (done.manifest, done.digest, done.created) == (
        stored.manifest, stored.digest, stored.created
    )


async def test_stop_and_options_set_by_anyone_while_another_holds_the_run(
    store: Store, other: Store
) -> None:
    await store.create_run(new_run("r1", options={"on_cancel": "stop", "keep": 1}))
    [claimed] = await store.claim("A", ttl=LONG, limit=1)
    await other.update_run("r1", stop_requested=True)  # a client: no owner
    await other.update_run("r1", options={"on_cancel": "detach"})  # replaced whole
    run = await store.get_run("r1")
    assert run is not None
    assert run.stop_requested
    assert run.options == {"on_cancel": "detach"}
    assert (run.owner, run.lease_until) == ("A", claimed.lease_until)

    with pytest.raises(LeaseLost):
        await other.update_run("r1", owner="B", status=RunStatus.STOPPED)
    await store.update_run("r1", owner="A", status=RunStatus.STOPPED)
    run = await store.get_run("r1")
    assert run is not None and run.status is RunStatus.STOPPED


async def test_update_run_with_owner_needs_the_lease(store: Store) -> None:
    await store.create_run(new_run("r1"))
    with pytest.raises(LeaseLost):  # nobody holds it
        await store.update_run("r1", owner="A", status=RunStatus.RUNNING)
    await store.claim("A", ttl=EXPIRED, limit=1)
    with pytest.raises(LeaseLost):  # A held it, but the lease ran out
        await store.update_run("r1", owner="A", status=RunStatus.RUNNING, ended=5.0)
    with pytest.raises(LeaseLost):
        await store.update_run("missing", owner="A", status=RunStatus.RUNNING)
    run = await store.get_run("r1")
    assert run is not None
    assert (run.status, run.ended) == (RunStatus.PENDING, None)


# --- leases --------------------------------------------------------------------------


async def test_claim_takes_unfinished_unheld_runs_oldest_first(store: Store) -> None:
    await add_runs(store, ("held", 1.0, RunStatus.PENDING))
    assert [run.run_id for run in await store.claim("X", ttl=LONG, limit=1)] == ["held"]
    await add_runs(store, ("expired", 2.0, RunStatus.RUNNING))
    assert [run.run_id for run in await store.claim("Y", ttl=EXPIRED, limit=5)] == ["expired"]
    await add_runs(
        store,
        ("succeeded", 0.1, RunStatus.SUCCEEDED),
        ("failed", 0.2, RunStatus.FAILED),
        ("stopped", 0.3, RunStatus.STOPPED),
        ("p1", 3.0, RunStatus.PENDING),
        ("r1", 4.0, RunStatus.RUNNING),
        ("p2", 5.0, RunStatus.PENDING),
    )

    before = time.time()
    first = await store.claim("A", ttl=LONG, limit=2)
    assert [run.run_id for run in first] == ["expired", "p1"]
    for run in first:
        assert run.owner == "A"
        assert run.lease_until is not None
        assert before + LONG - 10 < run.lease_until < time.time() + LONG + 10
    assert [run.run_id for run in await store.claim("A", ttl=LONG, limit=10)] == ["r1", "p2"]
    assert await store.claim("B", ttl=LONG, limit=10) == []
    assert await store.claim("A", ttl=LONG, limit=0) == []

    owners = {run.run_id: run.owner for run in await store.list_runs()}
    assert owners == {
        "held": "X", "expired": "A", "p1": "A", "r1": "A", "p2": "A",
        "succeeded": None, "failed": None, "stopped": None,
    }
    stored = await store.get_run("p1")
    assert stored is not None and stored.lease_until == first[1].lease_until


async def test_two_daemons_claiming_at_once_never_share_a_run(store: Store, other: Store) -> None:
    ids = [f"run-{i:02d}" for i in range(10)]
    for i, run_id in enumerate(ids):
        await store.create_run(new_run(run_id, created=float(i)))

    claimers = [(store, "A"), (other, "B")] * 3  # three claims of each daemon at a time
    taken: list[tuple[str, str]] = []
    for _ in range(20):
        rounds = await asyncio.gather(
            *(daemon.claim(owner, ttl=LONG, limit=1) for daemon, owner in claimers)
        )
        got = [
            (run.run_id, owner)
            for (_, owner), runs in zip(claimers, rounds, strict=True)
            for run in runs
        ]
        if not got:
            break
        taken += got
    assert sorted(run_id for run_id, _ in taken) == ids  # each exactly once
    for run_id, owner in taken:
        run = await store.get_run(run_id)
        assert run is not None and run.owner == owner


async def test_renew_returns_the_runs_still_held(store: Store) -> None:
    await add_runs(
        store,
        ("r1", 1.0, RunStatus.PENDING),
        ("r2", 2.0, RunStatus.RUNNING),
        ("r3", 3.0, RunStatus.PENDING),
        ("r4", 4.0, RunStatus.PENDING),
    )
    held = {run.run_id: run for run in await store.claim("A", ttl=LONG, limit=2)}
    await store.claim("B", ttl=LONG, limit=1)  # r3

    assert await store.renew("A", ["r1", "r2", "r3", "r4", "missing"], ttl=2 * LONG) == {
        "r1", "r2"
    }
    renewed = await store.get_run("r1")
    assert renewed is not None and renewed.lease_until is not None
    assert renewed.lease_until > (held["r1"].lease_until or 0) + LONG / 2
    other_lease = await store.get_run("r3")
    assert other_lease is not None and other_lease.owner == "B"
    assert await store.renew("A", [], ttl=LONG) == set()
    assert await store.renew("C", ["r1"], ttl=LONG) == set()


async def test_an_expired_lease_is_taken_over(store: Store, other: Store) -> None:
    await store.create_run(new_run("r1"))
    await store.claim("A", ttl=EXPIRED, limit=1)
    assert await store.renew("A", ["r1"], ttl=LONG) == set()  # ran out: not A's any more

    [taken] = await other.claim("B", ttl=LONG, limit=1)
    assert (taken.run_id, taken.owner) == ("r1", "B")
    assert await store.renew("A", ["r1"], ttl=LONG) == set()
    assert await other.renew("B", ["r1"], ttl=LONG) == {"r1"}
    with pytest.raises(LeaseLost):
        await store.write("r1", Batch(events=[event("train", "status", 1)]), owner="A")


async def test_a_lease_renewed_into_the_past_expires(store: Store, other: Store) -> None:
    await store.create_run(new_run("r1"))
    await store.claim("A", ttl=LONG, limit=1)
    assert await other.claim("B", ttl=LONG, limit=1) == []
    assert await store.renew("A", ["r1"], ttl=EXPIRED) == {"r1"}  # held until now: gone
    assert [run.run_id for run in await other.claim("B", ttl=LONG, limit=1)] == ["r1"]


async def test_release_makes_a_run_claimable_at_once(store: Store, other: Store) -> None:
    await store.create_run(new_run("r1"))
    await store.claim("A", ttl=LONG, limit=1)
    assert await other.claim("B", ttl=LONG, limit=1) == []
    await other.release("B", "r1")  # not B's to give up
    assert await other.claim("B", ttl=LONG, limit=1) == []

    await store.release("A", "r1")
    released = await store.get_run("r1")
    assert released is not None
    assert (released.owner, released.lease_until) == (None, None)
    assert await store.renew("A", ["r1"], ttl=LONG) == set()
    assert [run.run_id for run in await other.claim("B", ttl=LONG, limit=1)] == ["r1"]


# --- jobs, positions and events ----------------------------------------------------------


async def test_write_gives_events_increasing_ids_in_order(store: Store) -> None:
    await add_runs(store, ("r1", 1.0, RunStatus.RUNNING), ("r2", 2.0, RunStatus.RUNNING))
    first = [event("train", "submitted", 0), event("train", "status", 1), event("", "run", 2)]
    ids = await store.write("r1", Batch(events=first))
    assert len(ids) == 3 and ids == sorted(set(ids)) and ids[0] > 0
    elsewhere = await store.write("r2", Batch(events=[event("eval", "status", 3)]))
    more = await store.write("r1", Batch(events=[event("train", "finished", 4)]))
    assert ids[-1] < elsewhere[0] < more[0]
    assert await store.write("r1", Batch()) == []

    assert await store.events("r1") == [
        StoredEvent(id=i, run_id="r1", job=record["job"], type=record["type"], record=record)
        for i, record in zip([*ids, *more], [*first, event("train", "finished", 4)], strict=True)
    ]
    assert [e.record for e in await store.events("r2")] == [event("eval", "status", 3)]


async def test_write_records_events_jobs_and_positions_together(store: Store) -> None:
    await store.create_run(new_run("r1"))
    batch = Batch(
        events=[event("train", "log", 1, line="epoch 1"), event("train", "log", 2, line="\x00")],
        jobs=[JobRecord("r1", "train", kind="training", name="smrun-train-1", status="InProgress")],
        positions=[("train", "algo-1", "f/123"), ("train", "algo-2", "f/456")],
    )
    ids = await store.write("r1", batch)
    assert [e.id for e in await store.events("r1")] == ids
    assert (await store.events("r1"))[1].record["line"] == "\x00"
    [job] = await store.jobs("r1")
    assert (job.kind, job.name, job.status) == ("training", "smrun-train-1", "InProgress")
    assert await store.positions("r1") == {"train": {"algo-1": "f/123", "algo-2": "f/456"}}


async def test_a_failed_write_writes_nothing(store: Store) -> None:
    await store.create_run(new_run("r1"))
    await store.write("r1", Batch(positions=[("train", "algo-1", "t1")]))
    broken = Batch(
        events=[event("train", "log", 1)],
        jobs=[JobRecord("r1", "train", kind="training")],
        positions=[("train", "algo-1", "t2"), ("train", "algo-2", None)],  # type: ignore[list-item]
    )
    with pytest.raises(Exception):  # noqa: B017 - the backend's own NOT NULL error
        await store.write("r1", broken)
    assert await store.events("r1") == []
    assert await store.jobs("r1") == []
    assert await store.positions("r1") == {"train": {"algo-1": "t1"}}
    # and the store goes on
    assert len(await store.write("r1", Batch(events=[event("train", "log", 2)]))) == 1


async def test_write_is_fenced_by_the_lease(store: Store, other: Store) -> None:
    await store.create_run(new_run("r1"))
    await store.claim("A", ttl=LONG, limit=1)
    [first] = await store.write(
        "r1",
        Batch(
            events=[event("train", "status", 1)],
            jobs=[JobRecord("r1", "train", status="InProgress")],
            positions=[("train", "algo-1", "t1")],
        ),
        owner="A",
    )
    late = Batch(
        events=[event("train", "status", 2)],
        jobs=[JobRecord("r1", "train", status="Completed", outcome="succeeded")],
        positions=[("train", "algo-1", "t2"), ("train", "algo-2", "u1")],
    )
    assert await store.renew("A", ["r1"], ttl=EXPIRED) == {"r1"}
    with pytest.raises(LeaseLost):  # ran out, nobody took it yet: A still must stop
        await store.write("r1", late, owner="A")
    await other.claim("B", ttl=LONG, limit=1)
    with pytest.raises(LeaseLost):  # taken over
        await store.write("r1", late, owner="A")
    with pytest.raises(LeaseLost):
        await store.write("r1", Batch(), owner="C")
    with pytest.raises(LeaseLost):
        await store.write("missing", late, owner="A")

    assert [e.id for e in await store.events("r1")] == [first]
    assert await store.last_event_id("r1") == first
    assert await store.positions("r1") == {"train": {"algo-1": "t1"}}
    [job] = await store.jobs("r1")
    assert (job.status, job.outcome) == ("InProgress", None)
    assert await store.events("missing") == []

    later = await other.write("r1", late, owner="B")
    assert later[0] > first
    assert await store.positions("r1") == {"train": {"algo-1": "t2", "algo-2": "u1"}}


async def test_job_upserts_keep_fields_not_given(store: Store) -> None:
    await store.create_run(new_run("r1"))
    await store.write(
        "r1",
        Batch(jobs=[JobRecord("r1", "train", kind="training", name="smrun-train", updated=10.0)]),
    )
    [job] = await store.jobs("r1")
    assert (job.kind, job.name, job.status, job.updated) == ("training", "smrun-train", None, 10.0)

    before = time.time()
    result = {"kind": "training", "outcome": "succeeded", "metrics": {"loss": 0.25}}
    await store.write(
        "r1",
        Batch(
            jobs=[
                JobRecord("r1", "train", status="InProgress"),
                JobRecord("r1", "eval", kind="processing"),
                JobRecord("r1", "train", status="Completed", outcome="succeeded", result=result),
            ]
        ),
    )
    await store.write("r1", Batch(jobs=[JobRecord("r1", "train")]))
    train, evaluate = sorted(await store.jobs("r1"), key=lambda j: j.job, reverse=True)
    assert train == JobRecord(
        "r1", "train", kind="training", name="smrun-train", status="Completed",
        outcome="succeeded", result=result, updated=train.updated,
    )
    assert before - 5 <= train.updated <= time.time() + 5
    assert (evaluate.job, evaluate.kind, evaluate.name) == ("eval", "processing", None)
    assert [j.job for j in await store.jobs("r1")] == ["eval", "train"]
    assert await store.jobs("r2") == []


async def test_positions_by_job_and_stream(store: Store) -> None:
    await add_runs(store, ("r1", 1.0, RunStatus.RUNNING), ("r2", 2.0, RunStatus.RUNNING))
    assert await store.positions("r1") == {}
    await store.write(
        "r1",
        Batch(positions=[("train", "algo-1", "a1"), ("train", "algo-2", "b1"), ("eval", "x", "c")]),
    )
    await store.write("r1", Batch(positions=[("train", "algo-1", "a2"), ("train", "algo-1", "a3")]))
    await store.write("r2", Batch(positions=[("train", "algo-1", "other")]))
    assert await store.positions("r1") == {
        "train": {"algo-1": "a3", "algo-2": "b1"},
        "eval": {"x": "c"},
    }
    assert await store.positions("r2") == {"train": {"algo-1": "other"}}


async def test_events_filters(store: Store) -> None:
    await add_runs(store, ("r1", 1.0, RunStatus.RUNNING), ("r2", 2.0, RunStatus.RUNNING))
    records = [
        event("train", "submitted", 0),
        event("train", "log", 1),
        event("eval", "submitted", 2),
        event("train", "log", 3),
        event("eval", "log", 4),
        event("train", "finished", 5),
    ]
    ids = await store.write("r1", Batch(events=records))
    await store.write("r2", Batch(events=[event("train", "log", 9)]))
    by_id = dict(zip(ids, records, strict=True))

    def numbers(events: list[StoredEvent]) -> list[int]:
        assert all(by_id[e.id] == e.record and e.run_id == "r1" for e in events)
        return [e.record["n"] for e in events]

    assert numbers(await store.events("r1")) == [0, 1, 2, 3, 4, 5]
    assert numbers(await store.events("r1", after=ids[2])) == [3, 4, 5]
    assert numbers(await store.events("r1", job="train")) == [0, 1, 3, 5]
    assert numbers(await store.events("r1", types=["log"])) == [1, 3, 4]
    assert numbers(await store.events("r1", types=["submitted", "finished"])) == [0, 2, 5]
    assert numbers(await store.events("r1", job="eval", types=["log"])) == [4]
    assert numbers(await store.events("r1", job="train", after=ids[1], limit=1)) == [3]
    assert numbers(await store.events("r1", limit=2)) == [0, 1]
    assert await store.events("r1", after=ids[-1]) == []
    assert await store.events("r1", job="nobody") == []
    assert [e.record["n"] for e in await store.events("r2")] == [9]


async def test_last_event_id(store: Store) -> None:
    await add_runs(store, ("r1", 1.0, RunStatus.RUNNING), ("r2", 2.0, RunStatus.RUNNING))
    assert await store.last_event_id("r1") == 0
    ids = await store.write("r1", Batch(events=[event("train", "log", 1), event("x", "log", 2)]))
    assert await store.last_event_id("r1") == ids[-1]
    await store.write("r2", Batch(events=[event("train", "log", 3)]))
    await store.write("r1", Batch(positions=[("train", "s", "t")]))
    assert await store.last_event_id("r1") == ids[-1]
    assert await store.last_event_id("r2") > ids[-1]
    assert await store.last_event_id("nobody") == 0


async def test_concurrent_writes_to_one_run(store: Store) -> None:
    await store.create_run(new_run("r1"))
    batches = [[event(f"job-{b}", "log", 10 * b + i) for i in range(5)] for b in range(8)]
    answers = await asyncio.gather(*(store.write("r1", Batch(events=b)) for b in batches))
    stored = await store.events("r1")
    assert [e.id for e in stored] == sorted(i for ids in answers for i in ids)
    for ids, batch in zip(answers, batches, strict=True):
        assert [e.record for e in stored if e.id in ids] == batch


# --- the database ---------------------------------------------------------------------


async def test_state_survives_close_and_reopen(store: Store, new_store: NewStore) -> None:
    await store.create_run(new_run("r1", created=5.0, options={"on_cancel": "detach"}))
    await store.claim("A", ttl=LONG, limit=1)
    ids = await store.write(
        "r1",
        Batch(
            events=[event("train", "submitted", 1), event("train", "log", 2)],
            jobs=[JobRecord("r1", "train", kind="training", name="n", result={"a": [1, 2]})],
            positions=[("train", "algo-1", "t9")],
        ),
        owner="A",
    )
    await store.update_run("r1", owner="A", status=RunStatus.RUNNING, summary={"running": 1})
    run = await store.get_run("r1")
    jobs = await store.jobs("r1")
    events = await store.events("r1")
    await store.close()
    await store.close()  # twice is fine

    reopened = new_store()
    await reopened.open()
    await reopened.open()  # idempotent
    try:
        assert await reopened.get_run("r1") == run
        assert await reopened.jobs("r1") == jobs
        assert await reopened.events("r1") == events
        assert await reopened.positions("r1") == {"train": {"algo-1": "t9"}}
        assert await reopened.last_event_id("r1") == ids[-1]
        assert await reopened.renew("A", ["r1"], ttl=LONG) == {"r1"}  # the lease held on
        [more] = await reopened.write("r1", Batch(events=[event("train", "log", 3)]), owner="A")
        assert more > ids[-1]
    finally:
        await reopened.close()


async def test_a_store_that_is_not_open_says_so(new_store: NewStore) -> None:
    store = new_store()
    with pytest.raises(RuntimeError, match="not open"):
        await store.get_run("r1")


def test_open_store_picks_the_backend(tmp_path: Path) -> None:
    for url in ("postgresql://smrun@db.example:5432/smrun", "postgres://u:secret@h/d"):
        store = open_store(url)
        assert isinstance(store, PostgresStore)
        assert store.url == url
        assert "secret" not in repr(store)
    local = open_store(str(tmp_path / "state"))
    assert isinstance(local, SqliteStore)
    assert local.path == tmp_path / "state" / "journal.sqlite"
    assert not (tmp_path / "state").exists()  # not opened yet


async def test_sqlite_file_is_the_journals(tmp_path: Path) -> None:
    state = tmp_path / "new" / "state"
    store = SqliteStore.in_dir(state)
    await store.open()
    try:
        path = state / "journal.sqlite"
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        await store.create_run(new_run("r1"))
        await store.write(
            "r1",
            Batch(
                jobs=[JobRecord("r1", "train", kind="training", name="smrun-train")],
                positions=[("train", "algo-1", "f/1"), ("train", "algo-2", "f/2")],
            ),
        )
        with Journal(path) as journal:  # the store open meanwhile: WAL readers don't wait
            assert journal.tokens("r1", "train") == {"algo-1": "f/1", "algo-2": "f/2"}
            journal.save_token("r1", "train", "algo-1", "f/3")
        assert await store.positions("r1") == {"train": {"algo-1": "f/3", "algo-2": "f/2"}}
    finally:
        await store.close()

    # and a journal's file opens as a store
    older = tmp_path / "older"
    with Journal.in_dir(older) as journal:
        journal.save_token("r9", "eval", "s", "tok")
    reopened = SqliteStore.in_dir(older)
    await reopened.open()
    try:
        assert await reopened.positions("r9") == {"eval": {"s": "tok"}}
        assert await reopened.list_runs() == []
    finally:
        await reopened.close()


async def test_a_store_tells_a_listener_of_every_write_of_another_daemon(
    store: Store, other: Store
) -> None:
    """PostgreSQL: a write of events, and a change of the run, reach a daemon
    listening on the other connection; a listener whose connection is killed
    says so (None) and listens again. SQLite: one daemon per file, nobody to
    hear from, so ``listen`` returns at once and never pushes."""
    heard: list[str | None] = []

    async def until_heard(count: int) -> None:
        with anyio.fail_after(20):
            while len(heard) < count:
                await anyio.sleep(0.01)

    async def until_pushing(pushing: bool) -> None:
        with anyio.fail_after(20):
            while store.pushing is not pushing:
                await anyio.sleep(0.01)

    await store.create_run(new_run("heard"))
    if isinstance(store, SqliteStore):
        with anyio.fail_after(5):
            await store.listen(heard.append)
        assert heard == [] and not store.pushing
        return
    async with anyio.create_task_group() as tg:
        tg.start_soon(store.listen, heard.append)
        await until_pushing(True)
        await other.write("heard", Batch(events=[{"type": "notice", "job": "", "time": 1.0}]))
        await until_heard(1)
        await other.write("heard", Batch(positions=[("train", "s", "t")]))  # no events: quiet
        # notifications come in commit order: the marker's proves the quiet one said nothing
        await other.create_run(new_run("marker"))
        await other.write("marker", Batch(events=[{"type": "notice", "job": "", "time": 1.5}]))
        await until_heard(2)
        assert heard == ["heard", "marker"]
        heard.remove("marker")
        await other.update_run("heard", status=RunStatus.SUCCEEDED, ended=2.0)
        await until_heard(2)
        assert heard == ["heard", "heard"]

        # the listening connection dies: told as None, then it listens again
        assert isinstance(other, PostgresStore)
        killed = await other.pool.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = 'smrun-listen'")
        assert killed == 1
        await until_heard(3)
        assert heard[2] is None
        await until_pushing(True)
        await other.write("heard", Batch(events=[{"type": "notice", "job": "", "time": 3.0}]))
        await until_heard(4)
        assert heard[3] == "heard"
        tg.cancel_scope.cancel()
    assert not store.pushing
