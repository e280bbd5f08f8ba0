"""A client of the daemon's API: what ``smrun submit | status | logs | stop`` use.

The event streams come back as the events the daemon's runs published
(:func:`smrun.events.from_record`), so a terminal shows a daemon's run with
the same live table and lines as ``smrun run``. A stream that drops (the
daemon restarted, a proxy timed out) is opened again with ``Last-Event-ID``:
nothing is missed and nothing comes twice.

Error handling: :class:`ClientError` for an answer that is not a success
(its status and the daemon's messages) and for a daemon that can't be
reached (status 0); a dropped stream is retried for ``reconnect_for``
seconds before that error.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import anyio

RECONNECT_FOR = 300.0  # how long a dropped stream is tried again
RETRY_FIRST = 0.2
RETRY_MAX = 5.0


class ClientError(Exception):
    def __init__(self, status: int, message: str, errors: list[str] | None = None) -> None:
        self.status = status
        self.message = message
        self.errors = errors or []
        super().__init__(message if not self.errors else message + "\n" + "\n".join(self.errors))


@dataclass(frozen=True)
class StreamEvent:
    id: int
    type: str
    record: dict[str, Any]


class SseParser:
    """Server-sent events from chunks of bytes (split anywhere)."""

    def __init__(self) -> None:
        self._buffer = b""
        self._id: str | None = None
        self._type = "message"
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[tuple[str | None, str, str]]:
        """The (id, type, data) of each event completed by ``chunk``."""
        self._buffer += chunk
        events: list[tuple[str | None, str, str]] = []
        while True:
            cut = self._buffer.find(b"\n")
            if cut < 0:
                return events
            raw, self._buffer = self._buffer[:cut], self._buffer[cut + 1:]
            line = raw.decode("utf-8").rstrip("\r")
            if not line:
                if self._data:
                    events.append((self._id, self._type, "\n".join(self._data)))
                self._type, self._data = "message", []
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "id":
                self._id = value
            elif name == "event":
                self._type = value
            elif name == "data":
                self._data.append(value)


class Client:
    """``async with Client(url, token) as daemon: await daemon.submit(text)``."""

    def __init__(self, url: str, token: str | None = None, *,
                 reconnect_for: float = RECONNECT_FOR) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.reconnect_for = reconnect_for
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self._session = aiohttp.ClientSession(
            headers=headers, timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()

    # --- requests ------------------------------------------------------------

    async def submit(self, text: str, *, run_id: str | None = None,
                     on_cancel: str | None = None) -> tuple[dict[str, Any], bool]:
        """``(run, created)``; created is False for an earlier identical submission."""
        body: dict[str, Any] = {"manifest": text}
        if run_id:
            body["run_id"] = run_id
        if on_cancel:
            body["on_cancel"] = on_cancel
        status, data = await self._request("POST", "/v1/runs", json=body)
        return data, status == 201

    async def run(self, run_id: str) -> dict[str, Any]:
        return dict((await self._request("GET", f"/v1/runs/{run_id}"))[1])

    async def runs(self, *, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        params = {"limit": str(limit), **({"status": status} if status else {})}
        return list((await self._request("GET", "/v1/runs", params=params))[1]["runs"])

    async def stop(self, run_id: str, job: str | None = None) -> None:
        path = f"/v1/runs/{run_id}" + (f"/jobs/{job}" if job else "") + "/stop"
        await self._request("POST", path)

    async def _request(self, method: str, path: str, **options: Any) -> tuple[int, Any]:
        session = self._require()
        try:
            async with session.request(method, self.url + path, **options) as response:
                data = _decode(response.status, await response.text())
                if response.status >= 400:
                    raise _error(response.status, data)
                return response.status, data
        except aiohttp.ClientConnectionError as error:
            raise ClientError(0, f"can't reach the daemon at {self.url}: {error}") from None

    # --- streams -------------------------------------------------------------

    async def events(self, run_id: str, *, logs: bool = False, follow: bool = True,
                     after: int = 0) -> AsyncIterator[StreamEvent]:
        """The run's events (its log lines too with ``logs``), from after ``after``."""
        query = {"logs": "1" if logs else "0", "follow": "1" if follow else "0"}
        async for event in self._stream(f"/v1/runs/{run_id}/events", query, after):
            yield event

    async def logs(self, run_id: str, job: str, *, follow: bool = True,
                   after: int = 0) -> AsyncIterator[StreamEvent]:
        """A job's log lines, ending once the job ended and every line came."""
        query = {"follow": "1" if follow else "0"}
        async for event in self._stream(f"/v1/runs/{run_id}/jobs/{job}/logs", query, after):
            if event.type == "log":
                yield event

    async def _stream(self, path: str, query: Mapping[str, str],
                      after: int) -> AsyncIterator[StreamEvent]:
        session = self._require()
        last = after
        delay = RETRY_FIRST
        failing_since: float | None = None
        while True:
            headers = {"Last-Event-ID": str(last)} if last else {}
            try:
                async with session.get(self.url + path, params=dict(query),
                                       headers=headers) as response:
                    if response.status >= 400:
                        raise _error(response.status, _decode(response.status,
                                                              await response.text()))
                    failing_since, delay = None, RETRY_FIRST
                    parser = SseParser()
                    async for chunk in response.content.iter_any():
                        for event_id, kind, data in parser.feed(chunk):
                            if kind == "end":
                                return
                            if event_id is not None:
                                last = int(event_id)
                            yield StreamEvent(last, kind, json.loads(data))
                    return  # the daemon closed the stream: the run ended
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError,
                    ConnectionError) as error:
                now = anyio.current_time()
                failing_since = failing_since if failing_since is not None else now
                if now - failing_since > self.reconnect_for:
                    raise ClientError(0, f"lost the daemon at {self.url}: {error}") from None
                await anyio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)

    def _require(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("use the Client inside 'async with'")
        return self._session


def _decode(status: int, text: str) -> Any:
    """An answer's JSON. An error that is not JSON (aiohttp's own 404 or 413, a
    proxy's page) becomes ``{"error": ...}`` with its first line."""
    if not text:
        return {}
    try:
        return json.loads(text)
    except ValueError:
        first = text.strip().splitlines()[0][:200] if text.strip() else ""
        if status < 400:
            raise ClientError(status, f"the daemon's answer is not JSON: {first}") from None
        return {"error": f"HTTP {status}: {first}"}


def _error(status: int, data: Any) -> ClientError:
    if status == 401:
        return ClientError(401, "the daemon refused the token")
    message = data.get("error", f"HTTP {status}") if isinstance(data, dict) else f"HTTP {status}"
    errors = data.get("errors", []) if isinstance(data, dict) else []
    return ClientError(status, message, [str(e) for e in errors])
