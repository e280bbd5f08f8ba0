"""What must survive a restart: which SageMaker resource each job is, how far
its logs were shown, and how it ended.

SageMaker stays the source of truth for status; the journal holds only what
SageMaker can't tell us: the log position of every stream (so a restarted run
prints no line twice and skips none) and the results already reported. It is
one SQLite file in WAL mode under the state directory, written as the run goes.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from smrun.console import redact
from smrun.events import Event, to_record
from smrun.recorder import job_update
from smrun.store.sqlite import JOURNAL_SCHEMA


def default_state_dir() -> Path:
    """``$SMRUN_STATE_DIR``, else the user's state directory (XDG)."""
    explicit = os.environ.get("SMRUN_STATE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(Path.home(), ".local", "state")
    return Path(base) / "smrun"


class Journal:
    """``Journal(path)``; use :meth:`sink` as a bus sink and :meth:`save_token`
    as the log follower's position callback."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # autocommit: every position is durable as soon as it is written
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(JOURNAL_SCHEMA)
        os.chmod(self.path, 0o600)

    @classmethod
    def in_dir(cls, state_dir: str | os.PathLike[str]) -> Journal:
        return cls(Path(state_dir) / "journal.sqlite")

    def close(self) -> None:
        self._db.close()

    def for_run(self, run_id: str) -> JournalRun:
        """What run ``run_id`` writes here (a :class:`smrun.run.RunLog`)."""
        return JournalRun(self, run_id)

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- writing ------------------------------------------------------------

    def save_token(self, run_id: str, job: str, stream: str, token: str) -> None:
        self._db.execute(
            "INSERT INTO positions (run_id, job, stream, token) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (run_id, job, stream) DO UPDATE SET token = excluded.token",
            (run_id, job, stream, token),
        )

    def _upsert(self, run_id: str, job: str, **values: Any) -> None:
        columns = ["run_id", "job", "updated", *values]
        params = [run_id, job, time.time(), *values.values()]
        updates = ", ".join(f"{c} = excluded.{c}" for c in ["updated", *values])
        self._db.execute(
            f"INSERT INTO jobs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
            f"ON CONFLICT (run_id, job) DO UPDATE SET {updates}",
            params,
        )

    def record(self, run_id: str, event: Event) -> None:
        """Keep what a restart needs from one event of run ``run_id``."""
        update = job_update(run_id, redact(to_record(event)))
        if update is None:
            return
        values = {"kind": update.kind, "name": update.name, "status": update.status,
                  "outcome": update.outcome,
                  "result": None if update.result is None else json.dumps(update.result,
                                                                          default=str)}
        self._upsert(run_id, event.job, **{k: v for k, v in values.items() if v is not None})

    # --- reading ------------------------------------------------------------

    def tokens(self, run_id: str, job: str) -> dict[str, str]:
        rows = self._db.execute(
            "SELECT stream, token FROM positions WHERE run_id = ? AND job = ?", (run_id, job)
        )
        return {stream: token for stream, token in rows}



class JournalRun:
    """One run's view of the journal: the :class:`smrun.run.RunLog` of ``smrun run``."""

    def __init__(self, journal: Journal, run_id: str) -> None:
        self.journal = journal
        self.run_id = run_id

    def record(self, event: Event) -> None:
        self.journal.record(self.run_id, event)

    def tokens(self, job: str) -> dict[str, str]:
        return self.journal.tokens(self.run_id, job)

    def save_token(self, job: str, stream: str, token: str) -> None:
        self.journal.save_token(self.run_id, job, stream, token)
