"""The store in one SQLite file: for one daemon, or one ``smrun run``.

The file is the journal's (``journal.sqlite`` under the state directory):
its ``jobs`` and ``positions`` tables are :mod:`smrun.journal`'s, unchanged,
and ``runs`` and ``events`` are added beside them. WAL mode, so readers (a
``Journal`` in another process, say) never wait for the writer.

Every call runs in a worker thread, one at a time (a lock), so the event loop
never waits for the disk. Leases use this machine's clock (``time.time()``):
only processes on this machine share the file.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from smrun.store import (
    RUN_COLUMNS,
    UNFINISHED,
    Batch,
    JobRecord,
    LeaseLost,
    RunConflict,
    RunRecord,
    RunStatus,
    StoredEvent,
    job_from_row,
    run_from_row,
)

T = TypeVar("T")

# the tables runner/journal.py uses too: a Journal reads (and writes) this same file
JOURNAL_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    run_id TEXT NOT NULL,
    job TEXT NOT NULL,
    kind TEXT,
    name TEXT,
    status TEXT,
    outcome TEXT,
    result TEXT,
    updated REAL NOT NULL,
    PRIMARY KEY (run_id, job)
);
CREATE TABLE IF NOT EXISTS positions (
    run_id TEXT NOT NULL,
    job TEXT NOT NULL,
    stream TEXT NOT NULL,
    token TEXT NOT NULL,
    PRIMARY KEY (run_id, job, stream)
);
"""

STORE_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    manifest TEXT NOT NULL,
    digest TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    options TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL,
    updated REAL NOT NULL,
    ended REAL,
    owner TEXT,
    lease_until REAL,
    stop_requested INTEGER NOT NULL DEFAULT 0,
    summary TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS runs_created ON runs (created, run_id);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    job TEXT NOT NULL,
    type TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_run ON events (run_id, id);
"""

_UNFINISHED = tuple(status.value for status in UNFINISHED)
_UNFINISHED_SQL = ", ".join(f"'{value}'" for value in _UNFINISHED)


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)


def _placeholders(values: Sequence[object]) -> str:
    return ", ".join("?" * len(values))


class SqliteStore:
    """``SqliteStore(path)``, or ``SqliteStore.in_dir(state_dir)``; then ``await open()``."""

    pushing = False  # one daemon writes here: there is no one else to hear from

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._lock = anyio.Lock()

    async def listen(self, written: Callable[[str | None], None]) -> None:
        return None

    @classmethod
    def in_dir(cls, state_dir: str | os.PathLike[str]) -> SqliteStore:
        return cls(Path(state_dir) / "journal.sqlite")

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    # --- plumbing -------------------------------------------------------------

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        async with self._lock:
            db = self._db
            if db is None:
                raise RuntimeError(f"{self!r} is not open")
            return await anyio.to_thread.run_sync(fn, db)

    @staticmethod
    def _transaction(db: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn(db)`` in one write transaction (taken at once: no upgrade deadlock)."""
        db.execute("BEGIN IMMEDIATE")
        try:
            result = fn(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return result

    @staticmethod
    def _held(db: sqlite3.Connection, run_id: str, owner: str, now: float) -> bool:
        row = db.execute(
            "SELECT 1 FROM runs WHERE run_id = ? AND owner = ? AND lease_until > ?",
            (run_id, owner, now),
        ).fetchone()
        return row is not None

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # created 0600 before SQLite opens it: its -wal and -shm files take its mode
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        os.chmod(self.path, 0o600)
        # autocommit; multi-statement writes take BEGIN IMMEDIATE themselves
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA busy_timeout=5000")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(JOURNAL_SCHEMA + STORE_SCHEMA)
        except BaseException:
            db.close()
            raise
        return db

    # --- Store ------------------------------------------------------------------

    async def open(self) -> None:
        async with self._lock:
            if self._db is None:
                self._db = await anyio.to_thread.run_sync(self._connect)

    async def close(self) -> None:
        async with self._lock:
            db, self._db = self._db, None
            if db is not None:
                await anyio.to_thread.run_sync(db.close)

    # --- runs ---------------------------------------------------------------------

    async def create_run(self, run: RunRecord) -> tuple[RunRecord, bool]:
        options, summary = _dumps(run.options), _dumps(run.summary)

        def create(db: sqlite3.Connection) -> tuple[RunRecord, bool]:
            now = time.time()
            inserted = db.execute(
                f"INSERT INTO runs ({RUN_COLUMNS}) VALUES ({_placeholders(range(13))}) "
                "ON CONFLICT (run_id) DO NOTHING",
                (
                    run.run_id, run.manifest, run.digest, run.source, run.status.value,
                    options, run.created or now, run.updated or now, run.ended, run.owner,
                    run.lease_until, int(run.stop_requested), summary,
                ),
            ).rowcount
            row = db.execute(
                f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?", (run.run_id,)
            ).fetchone()
            stored = run_from_row(row)
            if not inserted and stored.digest != run.digest:
                raise RunConflict(
                    f"run {run.run_id!r} already exists with another manifest "
                    f"(digest {stored.digest[:12]}, not {run.digest[:12]})"
                )
            return stored, bool(inserted)

        return await self._call(lambda db: self._transaction(db, create))

    async def get_run(self, run_id: str) -> RunRecord | None:
        def get(db: sqlite3.Connection) -> RunRecord | None:
            row = db.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,))
            found = row.fetchone()
            return None if found is None else run_from_row(found)

        return await self._call(get)

    async def list_runs(
        self, *, status: Sequence[RunStatus] = (), limit: int = 50, before: str | None = None
    ) -> list[RunRecord]:
        where: list[str] = []
        params: list[Any] = []
        if status:
            values = [RunStatus(s).value for s in status]
            where.append(f"status IN ({_placeholders(values)})")
            params += values
        if before is not None:
            where.append(
                "(created, run_id) < (SELECT created, run_id FROM runs WHERE run_id = ?)"
            )
            params.append(before)
        sql = f"SELECT {RUN_COLUMNS} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created DESC, run_id DESC LIMIT ?"
        params.append(max(limit, 0))
        return await self._call(lambda db: [run_from_row(row) for row in db.execute(sql, params)])

    async def update_run(
        self, run_id: str, *, owner: str | None = None, status: RunStatus | None = None,
        ended: float | None = None, summary: Mapping[str, Any] | None = None,
        stop_requested: bool | None = None, options: Mapping[str, Any] | None = None,
    ) -> None:
        sets: list[str] = ["updated = ?"]
        params: list[Any] = []
        if status is not None:
            sets.append("status = ?")
            params.append(RunStatus(status).value)
        if ended is not None:
            sets.append("ended = ?")
            params.append(ended)
        if summary is not None:
            sets.append("summary = ?")
            params.append(_dumps(dict(summary)))
        if stop_requested is not None:
            sets.append("stop_requested = ?")
            params.append(int(stop_requested))
        if options is not None:
            sets.append("options = ?")
            params.append(_dumps(dict(options)))

        def update(db: sqlite3.Connection) -> None:
            now = time.time()
            sql = f"UPDATE runs SET {', '.join(sets)} WHERE run_id = ?"
            args: list[Any] = [now, *params, run_id]
            if owner is not None:
                sql += " AND owner = ? AND lease_until > ?"
                args += [owner, now]
            changed = db.execute(sql, args).rowcount
            if owner is not None and not changed:
                raise LeaseLost(f"{owner!r} does not hold the lease on run {run_id!r}")

        await self._call(update)

    # --- leases -------------------------------------------------------------------

    async def claim(self, owner: str, *, ttl: float, limit: int) -> list[RunRecord]:
        def claim(db: sqlite3.Connection) -> list[RunRecord]:
            now = time.time()
            runs = [
                run_from_row(row)
                for row in db.execute(
                    f"SELECT {RUN_COLUMNS} FROM runs WHERE status IN ({_UNFINISHED_SQL}) "
                    "AND (owner IS NULL OR lease_until IS NULL OR lease_until <= ?) "
                    "ORDER BY created, run_id LIMIT ?",
                    (now, max(limit, 0)),
                )
            ]
            # one statement per run: no limit on the number of bound variables
            db.executemany(
                "UPDATE runs SET owner = ?, lease_until = ? WHERE run_id = ?",
                [(owner, now + ttl, run.run_id) for run in runs],
            )
            for run in runs:
                run.owner, run.lease_until = owner, now + ttl
            return runs

        return await self._call(lambda db: self._transaction(db, claim))

    async def renew(self, owner: str, run_ids: Sequence[str], *, ttl: float) -> set[str]:
        wanted = list(dict.fromkeys(run_ids))
        if not wanted:
            return set()

        def renew(db: sqlite3.Connection) -> set[str]:
            now = time.time()
            return {
                run_id
                for run_id in wanted
                if db.execute(
                    "UPDATE runs SET lease_until = ? "
                    "WHERE run_id = ? AND owner = ? AND lease_until > ?",
                    (now + ttl, run_id, owner, now),
                ).rowcount
            }

        return await self._call(lambda db: self._transaction(db, renew))

    async def release(self, owner: str, run_id: str) -> None:
        await self._call(
            lambda db: db.execute(
                "UPDATE runs SET owner = NULL, lease_until = NULL WHERE run_id = ? AND owner = ?",
                (run_id, owner),
            )
        )

    # --- jobs, positions and events -----------------------------------------------------

    async def write(self, run_id: str, batch: Batch, *, owner: str | None = None) -> list[int]:
        events = [
            (str(record.get("job") or ""), str(record.get("type") or ""), _dumps(record))
            for record in batch.events
        ]
        jobs = [
            (
                job.job, job.kind, job.name, job.status, job.outcome,
                None if job.result is None else _dumps(job.result), job.updated,
            )
            for job in batch.jobs
        ]
        positions = list(batch.positions)

        def write(db: sqlite3.Connection) -> list[int]:
            now = time.time()
            if owner is not None and not self._held(db, run_id, owner, now):
                raise LeaseLost(f"{owner!r} does not hold the lease on run {run_id!r}")
            ids: list[int] = []
            for job, kind, record in events:
                cursor = db.execute(
                    "INSERT INTO events (run_id, job, type, record) VALUES (?, ?, ?, ?)",
                    (run_id, job, kind, record),
                )
                assert cursor.lastrowid is not None
                ids.append(cursor.lastrowid)
            for name, job_kind, resource, status, outcome, result, updated in jobs:
                db.execute(
                    "INSERT INTO jobs (run_id, job, kind, name, status, outcome, result, updated) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, job) DO UPDATE SET "
                    "kind = coalesce(excluded.kind, jobs.kind), "
                    "name = coalesce(excluded.name, jobs.name), "
                    "status = coalesce(excluded.status, jobs.status), "
                    "outcome = coalesce(excluded.outcome, jobs.outcome), "
                    "result = coalesce(excluded.result, jobs.result), "
                    "updated = excluded.updated",
                    (run_id, name, job_kind, resource, status, outcome, result, updated or now),
                )
            for job, stream, token in positions:
                db.execute(
                    "INSERT INTO positions (run_id, job, stream, token) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (run_id, job, stream) DO UPDATE SET token = excluded.token",
                    (run_id, job, stream, token),
                )
            return ids

        if not batch and owner is None:
            return []
        return await self._call(lambda db: self._transaction(db, write))

    async def jobs(self, run_id: str) -> list[JobRecord]:
        def jobs(db: sqlite3.Connection) -> list[JobRecord]:
            rows = db.execute(
                "SELECT job, kind, name, status, outcome, result, updated FROM jobs "
                "WHERE run_id = ? ORDER BY job",
                (run_id,),
            )
            return [job_from_row(run_id, row) for row in rows]

        return await self._call(jobs)

    async def positions(self, run_id: str) -> dict[str, dict[str, str]]:
        def positions(db: sqlite3.Connection) -> dict[str, dict[str, str]]:
            found: dict[str, dict[str, str]] = {}
            rows = db.execute(
                "SELECT job, stream, token FROM positions WHERE run_id = ? ORDER BY job, stream",
                (run_id,),
            )
            for row in rows:
                found.setdefault(row["job"], {})[row["stream"]] = row["token"]
            return found

        return await self._call(positions)

    async def events(
        self, run_id: str, *, after: int = 0, job: str | None = None,
        types: Sequence[str] = (), limit: int = 1000,
    ) -> list[StoredEvent]:
        sql = "SELECT id, job, type, record FROM events WHERE run_id = ? AND id > ?"
        params: list[Any] = [run_id, after]
        if job is not None:
            sql += " AND job = ?"
            params.append(job)
        if types:
            sql += f" AND type IN ({_placeholders(types)})"
            params += list(types)
        sql += " ORDER BY id LIMIT ?"
        params.append(max(limit, 0))

        def events(db: sqlite3.Connection) -> list[StoredEvent]:
            return [
                StoredEvent(
                    id=row["id"],
                    run_id=run_id,
                    job=row["job"],
                    type=row["type"],
                    record=json.loads(row["record"]),
                )
                for row in db.execute(sql, params)
            ]

        return await self._call(events)

    async def last_event_id(self, run_id: str) -> int:
        def last(db: sqlite3.Connection) -> int:
            row = db.execute("SELECT max(id) FROM events WHERE run_id = ?", (run_id,)).fetchone()
            return int(row[0] or 0)

        return await self._call(last)
