"""A real PostgreSQL server for the tests (a pytest plugin: ``tests/conftest.py``
loads it with ``pytest_plugins``).

- ``postgres_server`` (session): a server of its own, started with
  ``initdb``/``pg_ctl`` in a fresh temporary directory, listening on a free
  port of 127.0.0.1 (trust auth, superuser ``smrun``, fsync off); its base
  URL, ``postgresql://smrun@127.0.0.1:PORT/``. Under pytest-xdist each worker
  starts its own (separate directories and ports).
- ``postgres_url`` (function): a fresh database on it for one test
  (``CREATE DATABASE test_<random>``), dropped afterwards; its URL.

The binaries are the newest ``/usr/lib/postgresql/*/bin`` (Debian's layout),
else those on ``PATH``; without them the fixture fails (``.ci/run`` installs
the ``postgresql`` package). PostgreSQL refuses to run as root: as root, the
server runs as the ``postgres`` system user that the package creates.
"""

from __future__ import annotations

import functools
import glob
import os
import pwd
import secrets
import shlex
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

INSTALL_HINT = (
    "the PostgreSQL server binaries (initdb, pg_ctl, psql) were not found under "
    "/usr/lib/postgresql/*/bin or on PATH; .ci/run installs them (the `postgresql` "
    "package: apt-get install postgresql)"
)
SERVER_USER = "postgres"  # the system user Debian's postgresql package creates
START_ATTEMPTS = 5
ENV = {**os.environ, "LC_ALL": "C", "LANG": "C"}


@dataclass(frozen=True)
class Binaries:
    initdb: str
    pg_ctl: str
    psql: str


def _version(bin_dir: Path) -> tuple[int, ...]:
    """``/usr/lib/postgresql/15/bin`` -> ``(15,)``."""
    return tuple(int(part) for part in bin_dir.parent.name.split(".") if part.isdigit())


@functools.cache
def find_binaries() -> Binaries | None:
    """The newest installed version's binaries, else those on PATH."""
    dirs = [
        Path(initdb).parent
        for initdb in glob.glob("/usr/lib/postgresql/*/bin/initdb")
        if os.access(Path(initdb).parent / "pg_ctl", os.X_OK)
    ]
    if dirs:
        bin_dir = max(dirs, key=_version)
        psql = bin_dir / "psql"
        found_psql = str(psql) if os.access(psql, os.X_OK) else shutil.which("psql")
        if found_psql:
            return Binaries(str(bin_dir / "initdb"), str(bin_dir / "pg_ctl"), found_psql)
    initdb, pg_ctl, psql_path = (shutil.which(name) for name in ("initdb", "pg_ctl", "psql"))
    if initdb and pg_ctl and psql_path:
        return Binaries(initdb, pg_ctl, psql_path)
    return None


def _as_server_user(command: list[str]) -> list[str]:
    """``command`` as the ``postgres`` user when we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return command
    if shutil.which("runuser"):
        return ["runuser", "-u", SERVER_USER, "--", *command]
    return ["su", SERVER_USER, "-s", "/bin/sh", "-c", shlex.join(command)]


def _run(
    command: list[str], *, cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=cwd,
        env=ENV,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _output(result: subprocess.CompletedProcess[str]) -> str:
    return (result.stdout + result.stderr).strip()


@dataclass
class Server:
    binaries: Binaries
    base: Path  # the temporary directory: data/, server.log, the unix socket
    port: int = 0
    # CREATE DATABASE copies a template (~0.1-0.5 s): the next test's database is made
    # while this test runs, and the last one is dropped behind it
    _background: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="postgres-fixture")
    )
    _spare: Future[str] | None = None
    _create_options: str = ""

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def log(self) -> Path:
        return self.base / "server.log"

    @property
    def url(self) -> str:
        return f"postgresql://smrun@127.0.0.1:{self.port}/"

    def init(self) -> None:
        result = _run(
            _as_server_user(
                [
                    self.binaries.initdb, "-D", str(self.data), "-U", "smrun", "--auth=trust",
                    "-E", "UTF8", "--locale=C", "--no-sync",
                ]
            ),
            cwd=self.base,
        )
        if result.returncode != 0:
            pytest.fail(f"initdb failed ({result.returncode}):\n{_output(result)}")

    def start(self) -> None:
        """Start on a free port; another port if that one was taken meanwhile."""
        failures: list[str] = []
        for _ in range(START_ATTEMPTS):
            self.port = _free_port()
            options = " ".join(
                f"-c {setting}"
                for setting in (
                    "listen_addresses=127.0.0.1",
                    f"port={self.port}",
                    f"unix_socket_directories={shlex.quote(str(self.base))}",
                    "fsync=off",
                    "synchronous_commit=off",
                    "full_page_writes=off",
                    "shared_buffers=16MB",
                    "max_connections=200",
                )
            )
            result = _run(
                _as_server_user(
                    [
                        self.binaries.pg_ctl, "-D", str(self.data), "-l", str(self.log),
                        "-w", "-t", "60", "-o", options, "start",
                    ]
                ),
                cwd=self.base,
            )
            if result.returncode == 0:
                version = self.psql("postgres", "SHOW server_version_num").stdout.strip()
                if version.isdigit() and int(version) >= 150000:
                    # copying the template's files beats WAL-logging its pages (15's default)
                    self._create_options = " STRATEGY FILE_COPY"
                return
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            failures.append(f"port {self.port}: {_output(result)}\n{log[-2000:]}")
            self.stop()
        pytest.fail("PostgreSQL did not start:\n" + "\n".join(failures))

    def stop(self) -> None:
        _run(
            _as_server_user(
                [self.binaries.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop"]
            ),
            cwd=self.base,
            timeout=60,
        )

    def create_database(self) -> str:
        """A new, empty database; its name."""
        name = f"test_{secrets.token_hex(6)}"
        result = self.psql("postgres", f"CREATE DATABASE {name}{self._create_options}")
        if result.returncode != 0:
            raise RuntimeError(f"CREATE DATABASE {name} failed:\n{_output(result)}")
        return name

    def take_database(self) -> str:
        """A new database, never used (the spare, made ahead); starts the next spare."""
        spare, self._spare = self._spare, None
        try:
            name = spare.result() if spare is not None else self.create_database()
        except (RuntimeError, subprocess.SubprocessError):
            name = self.create_database()  # once more, in the foreground
        self._spare = self._background.submit(self.create_database)
        return name

    def drop_database(self, name: str) -> None:
        """Drop it behind the tests (FORCE, 13+: also ends connections a test left open)."""

        def drop() -> None:
            if self.psql("postgres", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)").returncode:
                self.psql("postgres", f"DROP DATABASE IF EXISTS {name}")

        self._background.submit(drop)

    def finish_background(self) -> None:
        self._background.shutdown(wait=True)

    def psql(self, database: str, sql: str) -> subprocess.CompletedProcess[str]:
        return _run(
            [
                self.binaries.psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                "-d", self.url + database, "-c", sql,
            ],
            cwd=self.base,
            timeout=60,
        )


_servers: dict[str, Server] = {}  # by base URL: postgres_url's way to its server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server of this session (of this xdist worker); its base URL."""
    binaries = find_binaries()
    if binaries is None:
        pytest.fail(INSTALL_HINT)
    root = os.geteuid() == 0
    if root:
        try:
            user = pwd.getpwnam(SERVER_USER)
        except KeyError:
            pytest.fail(
                f"running as root, PostgreSQL needs the {SERVER_USER!r} system user to run as; "
                ".ci/run installs the `postgresql` package, which creates it"
            )
    # /tmp rather than $TMPDIR as root: the server user must reach the directory
    base = Path(tempfile.mkdtemp(prefix="smrun-pg-", dir="/tmp" if root else None))
    try:
        if root:
            os.chown(base, user.pw_uid, user.pw_gid)
        server = Server(binaries, base)
        server.init()
        server.start()
        try:
            _servers[server.url] = server
            yield server.url
        finally:
            _servers.pop(server.url, None)
            server.finish_background()
            server.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database for this test; its URL. Dropped afterwards."""
    server = _servers[postgres_server]
    try:
        name = server.take_database()
    except (RuntimeError, subprocess.SubprocessError) as error:
        pytest.fail(str(error))
    try:
        yield postgres_server + name
    finally:
        server.drop_database(name)
