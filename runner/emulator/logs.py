"""CloudWatch Logs: a store of groups, streams and events, and the service on it.

Events of a stream live in one list in ingestion order, and every token is an
index into that list, so reading a page costs O(page) however long the stream.
Each stream also keeps its events sorted by timestamp (positions into that
list), so FilterLogEvents over a time range bisects instead of scanning.

Tokens look like AWS's (``f/<56 digits>/s``, ``b/<56 digits>/s``) and are bound
to their stream: a token from another stream is refused. They carry a variant
number so that two different tokens can denote the same position; the
``empty_page_every`` fault uses that to send an empty page whose token differs
from the one received, which is how CloudWatch behaves when a page is empty
while the stream has more (the end of a stream is only a token coming back
unchanged).

FilterLogEvents, as CloudWatch documents it: ``logStreamNames`` (at most 100,
each of which must exist, else ResourceNotFoundException) or
``logStreamNamePrefix``, not both (InvalidParameterException); ``startTime``
and ``endTime`` both inclusive ("events with a timestamp before/later than
this time are not returned"); events of every stream interleaved in order of
timestamp (ties: by stream, then by arrival; CloudWatch breaks them by
ingestion time and request id), oldest first or, with ``startFromHead``
false, newest first; at most ``limit`` (default 10,000) events or 1 MB a page;
``searchedLogStreams`` always empty, as it has been since 2020. Each event's
``eventId`` is fixed by its stream and its place there, so it is the same on
every call. The token names the last event the call looked at, so a page can
be resumed however the streams grew meanwhile.

A page may be empty and still carry a ``nextToken``: CloudWatch stops a search
that isn't finished and says where to go on. Here a call looks at no more than
``filter_scan_limit`` events (default 10,000, matching the pattern or not), so
a pattern that matches rarely yields short or empty pages with a token; and
the ``filter_empty_page_every`` fault turns every Nth page that has events
into an empty one whose token resumes where the call began (the page read
with that token is never emptied in its turn). A client that
stops at the first empty page loses what follows; one that follows tokens
until none comes back sees every event once. Both are deterministic.

Constraint violations (a ``limit`` over the maximum, 101 ``logStreamNames``)
come back as CloudWatch sends them, InvalidParameterException with the
"1 validation error detected: ..." message.

``LogStore.put`` is the Python entry point for tests and for the SageMaker
side, which writes its jobs' lines here.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from smrun.emulator.protocol import ApiError, Params, ServiceProtocol

Handler = Callable[[Params], dict[str, Any]]

PAGE_BYTES = 1_048_576  # a GetLogEvents/FilterLogEvents page, as CloudWatch counts it
EVENT_OVERHEAD = 26  # bytes CloudWatch adds to each message when sizing a batch
MAX_EVENTS = 10_000
FILTER_SCAN_LIMIT = 10_000  # events one FilterLogEvents call looks at, at most
MAX_BATCH_SPAN_MS = 24 * 3600 * 1000
TOO_NEW_MS = 2 * 3600 * 1000
TOO_OLD_MS = 14 * 24 * 3600 * 1000


@dataclass(frozen=True)
class LogEvent:
    timestamp: int  # ms since the epoch, as the writer stamped it
    message: str
    ingestion_time: int  # ms since the epoch, when the store received it


@dataclass
class LogStream:
    name: str
    arn: str
    uid: int  # store-wide number; binds tokens and event ids to this stream
    creation_time: int
    events: list[LogEvent] = field(default_factory=list)
    stored_bytes: int = 0
    first_event_timestamp: int | None = None
    last_event_timestamp: int | None = None
    last_ingestion_time: int | None = None
    sequence: int = 0
    # the events by time: times[i] is the timestamp of events[order[i]], sorted
    # by (timestamp, position)
    times: list[int] = field(default_factory=list)
    order: list[int] = field(default_factory=list)

    def append(self, event: LogEvent) -> None:
        position = len(self.events)
        self.events.append(event)
        if not self.times or event.timestamp >= self.times[-1]:
            self.times.append(event.timestamp)
            self.order.append(position)
        else:  # written out of order: rare, and bisect keeps it O(log n) to find
            at = bisect.bisect_right(self.times, event.timestamp)
            self.times.insert(at, event.timestamp)
            self.order.insert(at, position)
        self.stored_bytes += len(event.message.encode())
        if self.first_event_timestamp is None or event.timestamp < self.first_event_timestamp:
            self.first_event_timestamp = event.timestamp
        if self.last_event_timestamp is None or event.timestamp > self.last_event_timestamp:
            self.last_event_timestamp = event.timestamp
        self.last_ingestion_time = event.ingestion_time

    def keys(
        self,
        start_ms: int | None,
        end_ms: int | None,
        after: tuple[int, int, int] | None,
        *,
        forward: bool,
    ) -> Iterator[tuple[int, int, int]]:
        """(timestamp, uid, position) of the events from ``start_ms`` to
        ``end_ms`` (both inclusive) past ``after`` (a key of any stream), in
        time order, newest first unless ``forward``."""
        times, order, uid = self.times, self.order, self.uid
        lo = 0 if start_ms is None else bisect.bisect_left(times, start_ms)
        hi = len(times) if end_ms is None else bisect.bisect_right(times, end_ms)
        if after is not None:
            at, other, position = after
            if forward:
                # keys above ``after``: later, or as late from a later stream or place
                lo = max(
                    lo,
                    bisect.bisect_left(times, at) if uid >= other
                    else bisect.bisect_right(times, at),
                )
                while uid == other and lo < hi and times[lo] == at and order[lo] <= position:
                    lo += 1
            else:
                hi = min(
                    hi,
                    bisect.bisect_right(times, at) if uid <= other
                    else bisect.bisect_left(times, at),
                )
                while (
                    uid == other and hi > lo and times[hi - 1] == at and order[hi - 1] >= position
                ):
                    hi -= 1
        if forward:
            for i in range(lo, hi):
                yield times[i], uid, order[i]
        else:
            for i in range(hi - 1, lo - 1, -1):
                yield times[i], uid, order[i]


@dataclass
class LogGroup:
    name: str
    arn: str  # the group's ARN without the ``:*`` suffix
    creation_time: int
    streams: dict[str, LogStream] = field(default_factory=dict)
    sorted_names: list[str] = field(default_factory=list)  # kept sorted for prefix scans


class LogStore:
    """Groups, streams and events; no protocol here."""

    def __init__(self, *, region: str, account: str, clock: Callable[[], float]) -> None:
        self.region = region
        self.account = account
        self.clock = clock
        self.groups: dict[str, LogGroup] = {}
        self._uids = 0

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def group_arn(self, name: str) -> str:
        return f"arn:aws:logs:{self.region}:{self.account}:log-group:{name}"

    def create_group(self, name: str, *, now_ms: int | None = None) -> LogGroup:
        if name in self.groups:
            raise ApiError(
                "ResourceAlreadyExistsException", "The specified log group already exists"
            )
        group = LogGroup(name, self.group_arn(name), self.now_ms() if now_ms is None else now_ms)
        self.groups[name] = group
        return group

    def create_stream(self, group_name: str, name: str, *, now_ms: int | None = None) -> LogStream:
        group = self.group(group_name)
        if name in group.streams:
            raise ApiError(
                "ResourceAlreadyExistsException", "The specified log stream already exists"
            )
        self._uids += 1
        stream = LogStream(
            name=name,
            arn=f"{group.arn}:log-stream:{name}",
            uid=self._uids,
            creation_time=self.now_ms() if now_ms is None else now_ms,
        )
        group.streams[name] = stream
        bisect.insort(group.sorted_names, name)
        return stream

    def group(self, name: str) -> LogGroup:
        try:
            return self.groups[name]
        except KeyError:
            raise ApiError(
                "ResourceNotFoundException", "The specified log group does not exist."
            ) from None

    def stream(self, group_name: str, name: str) -> LogStream:
        try:
            return self.group(group_name).streams[name]
        except KeyError:
            raise ApiError(
                "ResourceNotFoundException", "The specified log stream does not exist."
            ) from None

    def put(
        self,
        group: str,
        stream: str,
        events: Iterable[tuple[int, str]],
        *,
        ingestion_time: int | None = None,
    ) -> LogStream:
        """Append ``(timestamp_ms, message)`` events, creating group and stream
        as needed. ``ingestion_time`` (ms) defaults to the clock's now."""
        ingested = self.now_ms() if ingestion_time is None else ingestion_time
        if group not in self.groups:
            self.create_group(group, now_ms=ingested)
        target = self.groups[group].streams.get(stream)
        if target is None:
            target = self.create_stream(group, stream, now_ms=ingested)
        for timestamp, message in events:
            target.append(LogEvent(int(timestamp), message, ingested))
        return target

    def events(self, group: str, stream: str) -> list[LogEvent]:
        return list(self.stream(group, stream).events)

    def stream_names(self, group: str, prefix: str = "") -> list[str]:
        if group not in self.groups:
            return []
        return [n for n in self.groups[group].sorted_names if n.startswith(prefix)]


# -- tokens ----------------------------------------------------------------


def make_token(direction: str, stream: LogStream, position: int, variant: int = 0) -> str:
    return f"{direction}/{position:020d}{stream.uid:020d}{variant:016d}/s"


_TOKEN = re.compile(r"([fb])/(\d{20})(\d{20})(\d{16})/s")


def read_token(token: str, stream: LogStream) -> tuple[str, int, int]:
    """(direction, position, variant) of a GetLogEvents token for ``stream``."""
    match = _TOKEN.fullmatch(token)
    if match is None or int(match[3]) != stream.uid or int(match[2]) > len(stream.events):
        raise ApiError("InvalidParameterException", "The specified nextToken is invalid.")
    return match[1], int(match[2]), int(match[4])


def _page_token(payload: str) -> str:
    return payload.encode().hex()


def _read_page_token(token: str) -> str:
    try:
        return bytes.fromhex(token).decode()
    except ValueError:
        raise ApiError("InvalidParameterException", "The specified nextToken is invalid.") from None


def event_size(event: LogEvent) -> int:
    return len(event.message.encode()) + EVENT_OVERHEAD


# -- filter patterns -------------------------------------------------------


def compile_filter(pattern: str | None) -> Callable[[str], bool]:
    """CloudWatch's term patterns: all terms must appear, ``"quoted phrases"``
    count as one term, ``-term`` excludes, ``?a ?b`` matches any of them."""
    if pattern is None or not pattern.strip():
        return lambda _message: True
    if pattern.lstrip()[:1] in ("{", "["):
        raise ApiError(
            "InvalidParameterException",
            "JSON and space-delimited filter patterns are not supported by this emulator.",
        )
    required: list[str] = []
    excluded: list[str] = []
    optional: list[str] = []
    for quoted, bare in re.findall(r'(-?\??"[^"]*")|(\S+)', pattern):
        token = quoted or bare
        target = required
        if token.startswith("-"):
            target, token = excluded, token[1:]
        elif token.startswith("?"):
            target, token = optional, token[1:]
        term = token[1:-1] if len(token) >= 2 and token[0] == token[-1] == '"' else token
        if term:
            target.append(term)

    def matches(message: str) -> bool:
        if any(term in message for term in excluded):
            return False
        if optional and not any(term in message for term in optional):
            return False
        return all(term in message for term in required)

    return matches


# -- the service -----------------------------------------------------------


class LogsService:
    """The CloudWatch Logs operations over a :class:`LogStore`."""

    def __init__(self, store: LogStore) -> None:
        self.store = store
        self.protocol = ServiceProtocol.for_service(
            "logs", validation_code="InvalidParameterException"
        )
        self.empty_page_every = 0  # fault knob, set by the server's FaultConfig
        self._get_calls = 0
        # FilterLogEvents: events a call looks at, at most; the empty-page fault knob
        self.filter_scan_limit = FILTER_SCAN_LIMIT
        self.filter_empty_page_every = 0
        self._filter_calls = 0
        self.filter_scanned = 0  # events FilterLogEvents calls have looked at, in all
        self.operations: dict[str, Handler] = {
            "CreateLogGroup": self.create_log_group,
            "CreateLogStream": self.create_log_stream,
            "DeleteLogGroup": self.delete_log_group,
            "DeleteLogStream": self.delete_log_stream,
            "DescribeLogGroups": self.describe_log_groups,
            "PutLogEvents": self.put_log_events,
            "DescribeLogStreams": self.describe_log_streams,
            "GetLogEvents": self.get_log_events,
            "FilterLogEvents": self.filter_log_events,
        }

    def _group_of(self, params: Params) -> LogGroup:
        name = params.get("logGroupName")
        identifier = params.get("logGroupIdentifier")
        if name is not None and identifier is not None:
            raise ApiError(
                "InvalidParameterException",
                "LogGroup name and LogGroup ARN are mutually exclusive parameters.",
            )
        if identifier is not None:
            prefix = f"arn:aws:logs:{self.store.region}:{self.store.account}:log-group:"
            name = identifier
            if identifier.startswith("arn:"):
                if not identifier.startswith(prefix):
                    raise ApiError(
                        "ResourceNotFoundException", "The specified log group does not exist."
                    )
                name = identifier[len(prefix) :].removesuffix(":*")
        if name is None:
            raise ApiError(
                "InvalidParameterException",
                "Either logGroupName or logGroupIdentifier must be specified.",
            )
        return self.store.group(name)

    def create_log_group(self, params: Params) -> dict[str, Any]:
        self.store.create_group(params["logGroupName"])
        return {}

    def create_log_stream(self, params: Params) -> dict[str, Any]:
        self.store.create_stream(params["logGroupName"], params["logStreamName"])
        return {}

    def delete_log_group(self, params: Params) -> dict[str, Any]:
        self.store.group(params["logGroupName"])
        del self.store.groups[params["logGroupName"]]
        return {}

    def delete_log_stream(self, params: Params) -> dict[str, Any]:
        group = self.store.group(params["logGroupName"])
        self.store.stream(group.name, params["logStreamName"])
        del group.streams[params["logStreamName"]]
        group.sorted_names.remove(params["logStreamName"])
        return {}

    def describe_log_groups(self, params: Params) -> dict[str, Any]:
        prefix = params.get("logGroupNamePrefix", "")
        limit = params.get("limit", 50)
        after = _read_page_token(params["nextToken"]) if "nextToken" in params else None
        names = sorted(n for n in self.store.groups if n.startswith(prefix))
        start = bisect.bisect_right(names, after) if after is not None else 0
        page = names[start : start + limit]
        result: dict[str, Any] = {
            "logGroups": [
                {
                    "logGroupName": g.name,
                    "creationTime": g.creation_time,
                    "arn": f"{g.arn}:*",
                    "logGroupArn": g.arn,
                    "storedBytes": sum(s.stored_bytes for s in g.streams.values()),
                    "metricFilterCount": 0,
                    "logGroupClass": "STANDARD",
                }
                for g in (self.store.groups[n] for n in page)
            ]
        }
        if start + limit < len(names):
            result["nextToken"] = _page_token(page[-1])
        return result

    def put_log_events(self, params: Params) -> dict[str, Any]:
        stream = self.store.stream(params["logGroupName"], params["logStreamName"])
        batch: list[dict[str, Any]] = params["logEvents"]
        timestamps = [int(e["timestamp"]) for e in batch]
        if any(b < a for a, b in itertools.pairwise(timestamps)):
            raise ApiError(
                "InvalidParameterException",
                "Log events in a single PutLogEvents request must be in chronological order.",
            )
        if timestamps[-1] - timestamps[0] > MAX_BATCH_SPAN_MS:
            raise ApiError(
                "InvalidParameterException",
                "The batch of log events in a single PutLogEvents request cannot span more "
                "than 24 hours.",
            )
        if sum(len(e["message"].encode()) + EVENT_OVERHEAD for e in batch) > PAGE_BYTES:
            raise ApiError("InvalidParameterException", "Upload too large: batch exceeds 1 MB")
        now = self.store.now_ms()
        too_old_end = bisect.bisect_left(timestamps, now - TOO_OLD_MS)  # events before it
        too_new_start = bisect.bisect_right(timestamps, now + TOO_NEW_MS)  # events from it
        for event in batch[too_old_end:too_new_start]:
            stream.append(LogEvent(int(event["timestamp"]), event["message"], now))
        stream.sequence += 1
        result: dict[str, Any] = {"nextSequenceToken": f"{stream.uid:020d}{stream.sequence:036d}"}
        rejected: dict[str, int] = {}
        if too_old_end > 0:
            rejected["tooOldLogEventEndIndex"] = too_old_end
        if too_new_start < len(batch):
            rejected["tooNewLogEventStartIndex"] = too_new_start
        if rejected:
            result["rejectedLogEventsInfo"] = rejected
        return result

    @staticmethod
    def _stream_view(stream: LogStream) -> dict[str, Any]:
        view: dict[str, Any] = {
            "logStreamName": stream.name,
            "creationTime": stream.creation_time,
            "arn": stream.arn,
            # CloudWatch has reported 0 here for streams since 2019.
            "storedBytes": 0,
        }
        if stream.events:
            view["firstEventTimestamp"] = stream.first_event_timestamp
            view["lastEventTimestamp"] = stream.last_event_timestamp
            view["lastIngestionTime"] = stream.last_ingestion_time
            view["uploadSequenceToken"] = f"{stream.uid:020d}{stream.sequence:036d}"
        return view

    def describe_log_streams(self, params: Params) -> dict[str, Any]:
        group = self._group_of(params)
        prefix: str | None = params.get("logStreamNamePrefix")
        order = params.get("orderBy", "LogStreamName")
        descending = bool(params.get("descending", False))
        limit: int = params.get("limit", 50)
        if prefix is not None and order == "LastEventTime":
            raise ApiError(
                "InvalidParameterException",
                "Cannot order by LastEventTime with a logStreamNamePrefix.",
            )
        token = _read_page_token(params["nextToken"]) if "nextToken" in params else None
        names = group.sorted_names
        if order == "LogStreamName":
            lo = bisect.bisect_left(names, prefix) if prefix else 0
            hi = bisect.bisect_left(names, prefix + "\U0010ffff") if prefix else len(names)
            # Name tokens are positions "after this name", so streams created
            # between pages are neither skipped nor repeated.
            if descending:
                if token is not None:
                    hi = max(lo, min(hi, bisect.bisect_left(names, token)))
                page = names[max(lo, hi - limit) : hi][::-1]
                more = hi - limit > lo
            else:
                if token is not None:
                    lo = min(hi, max(lo, bisect.bisect_right(names, token)))
                page = names[lo : min(hi, lo + limit)]
                more = lo + limit < hi
            next_token = _page_token(page[-1]) if more and page else None
        else:
            ranked = sorted(
                names,
                key=lambda n: (group.streams[n].last_event_timestamp or 0, n),
                reverse=descending,
            )
            try:
                start = int(token) if token is not None else 0
            except ValueError:
                raise ApiError(
                    "InvalidParameterException", "The specified nextToken is invalid."
                ) from None
            page = ranked[start : start + limit]
            next_token = _page_token(str(start + limit)) if start + limit < len(ranked) else None
        result: dict[str, Any] = {"logStreams": [self._stream_view(group.streams[n]) for n in page]}
        if next_token is not None:
            result["nextToken"] = next_token
        return result

    def get_log_events(self, params: Params) -> dict[str, Any]:
        group = self._group_of(params)
        stream = self.store.stream(group.name, params["logStreamName"])
        limit: int = params.get("limit", MAX_EVENTS)
        start_ms: int | None = params.get("startTime")
        end_ms: int | None = params.get("endTime")
        sent: str | None = params.get("nextToken")
        events = stream.events
        if sent is not None:
            direction, position, variant = read_token(sent, stream)
        elif params.get("startFromHead", False):
            direction, position, variant = "f", 0, 0
        else:
            direction, position, variant = "b", len(events), 0

        def wanted(event: LogEvent) -> bool:
            return (start_ms is None or event.timestamp >= start_ms) and (
                end_ms is None or event.timestamp < end_ms
            )

        reading_forward = direction == "f"
        page: list[LogEvent] = []
        size = 0
        if direction == "f":
            index = position
            while index < len(events) and len(page) < limit:
                event = events[index]
                if wanted(event):
                    size += event_size(event)
                    if size > PAGE_BYTES:
                        break
                    page.append(event)
                index += 1
            first, after = position, index
        else:
            index = position
            while index > 0 and len(page) < limit:
                event = events[index - 1]
                if wanted(event):
                    size += event_size(event)
                    if size > PAGE_BYTES:
                        break
                    page.append(event)
                index -= 1
            page.reverse()
            first, after = index, position
            if sent is None:
                # A read from the tail hands back a forward token at the end:
                # following it yields only what arrives later.
                direction = "f"

        self._get_calls += 1
        if (
            reading_forward
            and page
            and self.empty_page_every > 0
            and self._get_calls % self.empty_page_every == 0
        ):
            # An empty page that still has a new token: a client that stops at
            # the first empty page misses everything after it.
            return {
                "events": [],
                "nextForwardToken": make_token("f", stream, position, variant + 1),
                "nextBackwardToken": make_token("b", stream, position, variant + 1),
            }

        forward = make_token("f", stream, after)
        backward = make_token("b", stream, first)
        if sent is not None and sent.startswith("f/") and after == position:
            forward = sent  # nothing new: the unchanged token is how clients see the end
        if sent is not None and sent.startswith("b/") and first == position:
            backward = sent
        return {
            "events": [
                {"timestamp": e.timestamp, "message": e.message, "ingestionTime": e.ingestion_time}
                for e in page
            ],
            "nextForwardToken": forward,
            "nextBackwardToken": backward,
        }

    # -- FilterLogEvents ---------------------------------------------------

    def _filtered_streams(self, group: LogGroup, params: Params) -> list[LogStream]:
        names: list[str] | None = params.get("logStreamNames")
        prefix: str | None = params.get("logStreamNamePrefix")
        if names is not None and prefix is not None:
            raise ApiError(
                "InvalidParameterException",
                "logStreamNames and logStreamNamePrefix are mutually exclusive.",
            )
        if names is not None:
            if any(n not in group.streams for n in names):
                raise ApiError(
                    "ResourceNotFoundException", "The specified log stream does not exist."
                )
            return [group.streams[n] for n in dict.fromkeys(names)]
        sorted_names = group.sorted_names
        if not prefix:
            return [group.streams[n] for n in sorted_names]
        lo = bisect.bisect_left(sorted_names, prefix)
        hi = bisect.bisect_left(sorted_names, prefix + "\U0010ffff")
        return [group.streams[n] for n in sorted_names[lo:hi]]

    def filter_log_events(self, params: Params) -> dict[str, Any]:
        group = self._group_of(params)
        streams = self._filtered_streams(group, params)
        limit: int = params.get("limit", MAX_EVENTS)
        if "nextToken" in params:
            forward, after, variant = _read_filter_token(params["nextToken"])
        else:
            forward, after, variant = bool(params.get("startFromHead", True)), None, 0
        start_ms: int | None = params.get("startTime")
        end_ms: int | None = params.get("endTime")
        matches = compile_filter(params.get("filterPattern"))
        by_uid = {stream.uid: stream for stream in streams}
        ranges = (stream.keys(start_ms, end_ms, after, forward=forward) for stream in streams)
        merged = heapq.merge(*ranges, reverse=not forward)

        self._filter_calls += 1
        page: list[dict[str, Any]] = []
        size = 0
        examined = 0
        last: EventKey | None = after  # the scan's position: the last event looked at
        more = False
        for key in merged:
            if examined >= self.filter_scan_limit:
                more = True  # the scan stops here; the token resumes it
                break
            stream = by_uid[key[1]]
            event = stream.events[key[2]]
            if matches(event.message):
                size += event_size(event)
                if len(page) >= limit or size > PAGE_BYTES:
                    more = True
                    break
                page.append(
                    {
                        "logStreamName": stream.name,
                        "timestamp": event.timestamp,
                        "message": event.message,
                        "ingestionTime": event.ingestion_time,
                        "eventId": event_id(stream, key[2]),
                    }
                )
            examined += 1
            last = key
        self.filter_scanned += examined

        result: dict[str, Any] = {"events": page, "searchedLogStreams": []}
        every = self.filter_empty_page_every
        if page and every > 0 and variant == 0 and self._filter_calls % every == 0:
            # an empty page that still has a token, from where this call began
            # (never twice in a row: the call that follows one makes progress)
            result["events"] = []
            result["nextToken"] = _filter_token(forward, after, variant + 1)
        elif more:
            result["nextToken"] = _filter_token(forward, last, 0)
        return result


EventKey = tuple[int, int, int]  # (timestamp, stream uid, position in the stream)


def event_id(stream: LogStream, position: int) -> str:
    """56 digits, as CloudWatch's event ids are; the same for an event on every call."""
    return f"{stream.uid:020d}{position:036d}"


def _filter_token(forward: bool, key: EventKey | None, variant: int) -> str:
    payload = {"d": "f" if forward else "b", "k": list(key) if key else None, "v": variant}
    return _page_token(json.dumps(payload, separators=(",", ":")))


def _read_filter_token(token: str) -> tuple[bool, EventKey | None, int]:
    try:
        payload = json.loads(_read_page_token(token))
        key = payload["k"]
        after = None if key is None else (int(key[0]), int(key[1]), int(key[2]))
        return payload["d"] == "f", after, int(payload["v"])
    except (ValueError, KeyError, TypeError, IndexError):
        raise ApiError("InvalidParameterException", "The specified nextToken is invalid.") from None
