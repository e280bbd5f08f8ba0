"""Where one stream stands when it is read by timestamp: the pure half of the hub.

FilterLogEvents has no per-stream token: a stream is read "from a timestamp",
and what was printed already is told apart by each event's ``eventId``. A
:class:`Position` holds, per stream,

- ``high``: the newest timestamp (ms) printed;
- ``seen``: the ids of the events printed at or after ``horizon``;
- ``horizon``: nothing older is printed (again): those lines were printed, or
  are older than every window we read back;
- ``floor``: where a live read of the stream starts.

A live read starts ``window`` behind ``high`` and remembers the ids in that
window, so a line that shows up in the search a little after a newer line of
its stream (FilterLogEvents is eventually consistent) is still printed, once.
A stream that shows nothing while the other streams of the same read go on
follows them ``stall`` behind their newest line, so that one quiet stream does
not make every read of its batch start where it went quiet. A drain reads
``drain_window`` behind ``high`` whatever the floor, and ids are kept for the
widest of the windows.

A position is saved as ``t:<high>`` or ``t:<high>:<id>,<id>`` (the ids of the
lines at ``high``): small, because the journal writes it at every round.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PREFIX = "t:"
# ids saved with a position: the lines of the newest millisecond (usually one)
MAX_SAVED_IDS = 20


@dataclass
class Position:
    high: int | None = None  # newest timestamp printed (ms)
    floor: int | None = None  # live reads start here; None: from the stream's head
    horizon: int | None = None  # nothing older is printed (again); None: nothing printed
    seen: dict[str, int] = field(default_factory=dict)  # eventId -> timestamp, >= horizon
    resumed: bool = False  # came from a saved position (a restart)
    legacy: bool = False  # came from a GetLogEvents token: read again from the head

    def offer(self, event_id: str, timestamp: int) -> bool:
        """Whether an event the search returned is to be printed; if so it is
        remembered (call only when it will be published right away)."""
        if self.horizon is not None and timestamp < self.horizon:
            return False
        if event_id in self.seen:
            return False
        self.seen[event_id] = timestamp
        if self.high is None or timestamp > self.high:
            self.high = timestamp
        return True

    def settle(self, *, newest: int | None, window: int, stall: int, retain: int) -> None:
        """After a read that went to the end of its search: move the floor and
        the horizon up, and forget ids below the horizon. ``newest`` is the
        newest timestamp the read returned for any stream of its batch."""
        self.floor = next_floor(self.floor, self.high, newest, window, stall)
        if self.high is not None:
            cut = self.high - retain
            if self.horizon is None or cut > self.horizon:
                self.horizon = cut
                self.seen = {i: t for i, t in self.seen.items() if t >= cut}


def next_floor(
    floor: int | None, high: int | None, newest: int | None, window: int, stall: int
) -> int | None:
    """Where the next live read of a stream starts: ``window`` behind its own
    newest line, or ``stall`` behind the newest line of its batch when the
    stream itself has been quiet for longer; never further back than before."""
    candidates = [c for c in (floor,) if c is not None]
    if high is not None:
        candidates.append(high - window)
    if newest is not None:
        candidates.append(newest - stall)
    return max(candidates) if candidates else None


def read_start(position: Position, *, draining: bool, drain_window: int) -> int | None:
    """Where a read of this stream starts (ms; None: from the head). A drain
    reads ``drain_window`` behind the newest printed line, below the live
    floor, so that late lines of a stream that was quiet are still found."""
    if position.high is None:
        # nothing printed yet: a drain reads the whole stream, whatever the
        # live reads skipped while it looked quiet
        return None if draining else position.floor
    if not draining:
        return position.floor
    back = position.high - drain_window
    if position.horizon is not None:
        back = max(back, position.horizon)
    if position.floor is None:
        return back
    return min(position.floor, back)


def is_position(saved: str) -> bool:
    """A position this module saved (not a GetLogEvents token)."""
    return saved.startswith(PREFIX)


def parse_position(saved: str | None) -> Position:
    """The position a job saved before a restart. Reading resumes at the saved
    timestamp: the ids of the lines just before it were not saved, so lines
    older than it are taken as printed (re-reading the window would print
    them twice) and the saved ids keep the lines at it from repeating. A
    GetLogEvents token (the per-job follower's) can't be turned into a
    timestamp: that stream is read again from its head, and its lines are
    printed twice."""
    if saved is None:
        return Position()
    if not is_position(saved):
        return Position(legacy=True)
    body = saved[len(PREFIX) :]
    stamp, _, ids = body.partition(":")
    try:
        high = int(stamp)
    except ValueError:
        return Position(legacy=True)
    seen = {i: high for i in ids.split(",") if i} if ids else {}
    return Position(high=high, floor=high, horizon=high, seen=seen, resumed=True)


def format_position(position: Position) -> str | None:
    """What the journal keeps of a position; None before a line was printed."""
    if position.high is None:
        return None
    at_high = sorted(i for i, t in position.seen.items() if t == position.high)
    if not at_high or len(at_high) > MAX_SAVED_IDS or any("," in i or ":" in i for i in at_high):
        # too many lines in one millisecond to save: those are printed again
        # after a restart, rather than lost
        return f"{PREFIX}{position.high}"
    return f"{PREFIX}{position.high}:{','.join(at_high)}"
