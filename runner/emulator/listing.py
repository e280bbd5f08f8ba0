"""List* over thousands of resources at the cost of what it returns, not of what exists.

A runner that watches a thousand jobs asks one ``ListTrainingJobs`` every few
seconds, with ``LastModifiedTimeAfter`` set to its previous look: that call
must not build and sort a summary of every job the account ever ran. So each
kind keeps a :class:`ListIndex` of its resources, sorted four ways: by
creation time, by name, by LastModifiedTime and by status. The kind tells the
index of every status change at the moment it happens on the emulator's clock
(the kinds drive their timelines through the scheduler, see
:mod:`smrun.emulator.jobs`), so the index agrees with Describe* at any time.

A query picks the cheapest way in. With a LastModifiedTime bound, a
StatusEquals that applies before the page is chosen, or a CreationTime bound
that selects a small part of the index, it gathers only those resources,
filters and sorts them. Otherwise it walks the index of its sort order
(CreationTime or Name) from the page token on and stops once the page is
full. Summaries are built for the page only. :attr:`ListIndex.examined` tells
how many resources the last query looked at, so a test can check that it
looked at few.

AWS's semantics, as its API reference states them: the time bounds are
strict (``After`` means later than), NameContains is case-insensitive,
MaxResults defaults to 10, and the default sort and order are per operation.
``status_after_page`` is how ListTrainingJobs documents StatusEquals with
MaxResults: MaxResults resources are picked first, then filtered by status,
so a page can come back short (even empty) with a NextToken. Page tokens
name the last resource's sort key, so resources created between two pages
shift nothing.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from smrun.emulator.protocol import ApiError, Params
from smrun.emulator.resources import Result, make_page_token, read_page_token

T = TypeVar("T")

# sorts after every name: (t, HIGHEST) is after every (t, name)
HIGHEST = "\U0010ffff"
# a gathered candidate set is used when it holds at most this share of the index
GATHER_SHARE = 0.5
SORTS = ("Name", "CreationTime", "Status")


@dataclass(eq=False)
class Entry(Generic[T]):
    """One resource as the index knows it."""

    item: T
    name: str
    created: float
    status: str
    modified: float

    def key(self, sort_by: str) -> Any:
        if sort_by == "Name":
            return self.name
        if sort_by == "Status":
            return (self.status, self.created, self.name)
        return (self.created, self.name)


def _seconds(value: datetime | float) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)


@dataclass(frozen=True)
class Query:
    """The filters of one List* request."""

    contains: str = ""
    status: str | None = None
    created_after: float | None = None
    created_before: float | None = None
    modified_after: float | None = None
    modified_before: float | None = None
    # request member -> its value, for the kind's own filters
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, params: Params, extra_names: Iterable[str]) -> Query:
        def bound(name: str) -> float | None:
            value = params.get(name)
            return None if value is None else _seconds(value)

        return cls(
            contains=str(params.get("NameContains", "")).lower(),
            status=params.get("StatusEquals"),
            created_after=bound("CreationTimeAfter"),
            created_before=bound("CreationTimeBefore"),
            modified_after=bound("LastModifiedTimeAfter"),
            modified_before=bound("LastModifiedTimeBefore"),
            extra={n: params[n] for n in extra_names if params.get(n) is not None},
        )


class ListIndex(Generic[T]):
    """The resources of one kind, kept sorted for its List* operation.

    ``summary(item, now)`` builds a page's summaries; ``filters`` maps a
    request member the generic filters don't know (e.g.
    ``TrainingPlanArnEquals``) to a test of a resource against its value.
    """

    def __init__(
        self,
        *,
        summaries: str,
        summary: Callable[[T, float], Result],
        default_sort: str = "CreationTime",
        default_order: str = "Ascending",
        status_after_page: bool = False,
        filters: Mapping[str, Callable[[T, Any], bool]] | None = None,
    ) -> None:
        self.summaries = summaries
        self.summary = summary
        self.default_sort = default_sort
        self.default_order = default_order
        self.status_after_page = status_after_page
        self.filters = dict(filters or {})
        self._entries: dict[str, Entry[T]] = {}  # by lower-cased name
        self._by_created: list[tuple[float, str]] = []
        self._by_name: list[str] = []
        self._by_modified: list[tuple[float, str]] = []
        self._by_status: dict[str, dict[str, Entry[T]]] = {}
        self.examined = 0  # resources the last query looked at

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._entries

    # -- keeping it current --------------------------------------------------

    def add(self, item: T, name: str, created: float, status: str, modified: float) -> None:
        if name.lower() in self._entries:
            raise ValueError(f"{name} is already indexed")
        entry = Entry(item, name, created, status, modified)
        self._entries[name.lower()] = entry
        bisect.insort(self._by_created, (created, name))
        bisect.insort(self._by_name, name)
        bisect.insort(self._by_modified, (modified, name))
        self._by_status.setdefault(status, {})[name.lower()] = entry

    def move(self, name: str, status: str, modified: float) -> None:
        """The resource is in ``status`` since ``modified``."""
        entry = self._entries[name.lower()]
        if entry.modified != modified:
            _remove(self._by_modified, (entry.modified, entry.name))
            bisect.insort(self._by_modified, (modified, entry.name))
            entry.modified = modified
        if entry.status != status:
            del self._by_status[entry.status][name.lower()]
            self._by_status.setdefault(status, {})[name.lower()] = entry
            entry.status = status

    def remove(self, name: str) -> None:
        entry = self._entries.pop(name.lower())
        _remove(self._by_created, (entry.created, entry.name))
        _remove(self._by_name, entry.name)
        _remove(self._by_modified, (entry.modified, entry.name))
        del self._by_status[entry.status][name.lower()]

    def item(self, name: str) -> T | None:
        entry = self._entries.get(name.lower())
        return entry.item if entry is not None else None

    # -- answering -------------------------------------------------------------

    def answer(self, params: Params, now: float) -> Result:
        """The List* response for ``params`` at ``now``."""
        sort_by = params.get("SortBy", self.default_sort)
        if sort_by not in SORTS:
            raise ApiError("ValidationException", f"SortBy {sort_by} is not supported.")
        descending = params.get("SortOrder", self.default_order) == "Descending"
        limit: int = params.get("MaxResults", 10)
        query = Query.of(params, self.filters)
        after = self._token_key(params.get("NextToken"), sort_by)
        self.examined = 0
        keep = self._test(query)
        chosen = self._page(query, keep, sort_by, descending, after, limit + 1)
        page = chosen[:limit]
        token = make_page_token(_json_key(page[-1].key(sort_by))) if len(chosen) > limit else None
        if query.status is not None and self.status_after_page:
            page = [e for e in page if e.status == query.status]
        result: Result = {self.summaries: [self.summary(e.item, now) for e in page]}
        if token is not None:
            result["NextToken"] = token
        return result

    def _token_key(self, token: str | None, sort_by: str) -> Any:
        if token is None:
            return None
        key = read_page_token(token)
        expected = str if sort_by == "Name" else list
        if not isinstance(key, expected) or (
            isinstance(key, list) and len(key) != (3 if sort_by == "Status" else 2)
        ):
            raise ApiError("ValidationException", "Invalid pagination token.")
        return tuple(key) if isinstance(key, list) else key

    def _test(self, query: Query) -> Callable[[Entry[T]], bool]:
        status = None if self.status_after_page else query.status
        extra = [(self.filters[name], value) for name, value in query.extra.items()]

        def keep(e: Entry[T]) -> bool:
            return (
                query.contains in e.name.lower()
                and (status is None or e.status == status)
                and (query.created_after is None or e.created > query.created_after)
                and (query.created_before is None or e.created < query.created_before)
                and (query.modified_after is None or e.modified > query.modified_after)
                and (query.modified_before is None or e.modified < query.modified_before)
                and all(test(e.item, value) for test, value in extra)
            )

        return keep

    def _page(
        self,
        query: Query,
        keep: Callable[[Entry[T]], bool],
        sort_by: str,
        descending: bool,
        after: Any,
        wanted: int,
    ) -> list[Entry[T]]:
        """Up to ``wanted`` resources that pass ``keep``, in order, after the token."""
        narrowest = self._narrowest(query)
        if narrowest is not None and narrowest[0] <= max(wanted, GATHER_SHARE * len(self)):
            return self._gather(narrowest[1](), keep, sort_by, descending, after, wanted)
        if sort_by == "Status":
            everything = list(self._entries.values())
            return self._gather(everything, keep, sort_by, descending, after, wanted)
        return self._walk(query, keep, sort_by, descending, after, wanted)

    def _narrowest(
        self, query: Query
    ) -> tuple[int, Callable[[], list[Entry[T]]]] | None:
        """The size of the smallest candidate set an index can hand over for
        these filters, and how to take it; None if no index narrows them."""
        options: list[tuple[int, Callable[[], list[Entry[T]]]]] = []
        if query.modified_after is not None or query.modified_before is not None:
            lo, hi = _range(self._by_modified, query.modified_after, query.modified_before)
            options.append((hi - lo, lambda: self._entries_of(self._by_modified[lo:hi])))
        if query.status is not None and not self.status_after_page:
            matching = self._by_status.get(query.status, {})
            options.append((len(matching), lambda: list(matching.values())))
        if query.created_after is not None or query.created_before is not None:
            c_lo, c_hi = _range(self._by_created, query.created_after, query.created_before)
            options.append((c_hi - c_lo, lambda: self._entries_of(self._by_created[c_lo:c_hi])))
        if not options:
            return None
        return min(options, key=lambda option: option[0])

    def _entries_of(self, keys: list[tuple[float, str]]) -> list[Entry[T]]:
        return [self._entries[name.lower()] for _at, name in keys]

    def _gather(
        self,
        candidates: list[Entry[T]],
        keep: Callable[[Entry[T]], bool],
        sort_by: str,
        descending: bool,
        after: Any,
        wanted: int,
    ) -> list[Entry[T]]:
        self.examined += len(candidates)
        chosen = sorted(
            (e for e in candidates if keep(e)), key=lambda e: e.key(sort_by), reverse=descending
        )
        if after is not None:
            keys = [e.key(sort_by) for e in chosen]
            if descending:
                start = _bisect_descending(keys, after)
            else:
                start = bisect.bisect_right(keys, after)
            chosen = chosen[start:]
        return chosen[:wanted]

    def _walk(
        self,
        query: Query,
        keep: Callable[[Entry[T]], bool],
        sort_by: str,
        descending: bool,
        after: Any,
        wanted: int,
    ) -> list[Entry[T]]:
        chosen: list[Entry[T]] = []
        for entry in self._ordered(sort_by, descending, after):
            self.examined += 1
            if keep(entry):
                chosen.append(entry)
                if len(chosen) == wanted:
                    break
        return chosen

    def _ordered(self, sort_by: str, descending: bool, after: Any) -> Iterator[Entry[T]]:
        """Every resource in sort order, from just after the token's key."""
        entries = self._entries
        if sort_by == "Name":
            names = self._by_name
            if descending:
                stop = len(names) if after is None else bisect.bisect_left(names, after)
                for i in range(stop - 1, -1, -1):
                    yield entries[names[i].lower()]
            else:
                start = 0 if after is None else bisect.bisect_right(names, after)
                for i in range(start, len(names)):
                    yield entries[names[i].lower()]
            return
        created = self._by_created
        if descending:
            stop = len(created) if after is None else bisect.bisect_left(created, after)
            for i in range(stop - 1, -1, -1):
                yield entries[created[i][1].lower()]
        else:
            start = 0 if after is None else bisect.bisect_right(created, after)
            for i in range(start, len(created)):
                yield entries[created[i][1].lower()]


def _range(
    keys: list[tuple[float, str]], after: float | None, before: float | None
) -> tuple[int, int]:
    """The slice of ``keys`` strictly between ``after`` and ``before``."""
    lo = 0 if after is None else bisect.bisect_right(keys, (after, HIGHEST))
    hi = len(keys) if before is None else bisect.bisect_left(keys, (before, ""))
    return lo, max(lo, hi)


def _remove(keys: list[Any], key: Any) -> None:
    i = bisect.bisect_left(keys, key)
    if i == len(keys) or keys[i] != key:
        raise KeyError(key)
    del keys[i]


def _bisect_descending(keys: list[Any], after: Any) -> int:
    """In ``keys`` sorted high to low, the first position holding a key below ``after``."""
    lo, hi = 0, len(keys)
    while lo < hi:
        mid = (lo + hi) // 2
        if keys[mid] >= after:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _json_key(key: Any) -> Any:
    # a token carries JSON: tuples travel as lists
    return list(key) if isinstance(key, tuple) else key
