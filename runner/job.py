"""Job: one SageMaker resource driven to a terminal state.

The lifecycle is the same for every kind, read from its :class:`Kind` table:
describe first (attach to our own resource after a restart), else create;
follow the status and the logs; on a terminal status drain the logs and build
the :class:`JobResult`. Cancellation stops what this run created (or detaches)
in a shielded cleanup, so it runs even when cancellation lands mid-call.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import anyio

from smrun.aws import Aws
from smrun.budget import Priority
from smrun.errors import (
    describe,
    error_message,
    is_already_exists,
    is_already_terminal,
    is_aws_error,
    is_limit_exceeded,
    is_not_found,
)
from smrun.events import Bus, Event, Finished, LogLine, Notice, StatusChanged, Submitted
from smrun.identity import TAG_HASH, is_ours, request_hash, with_our_tags
from smrun.kind import Kind
from smrun.logs import Follower, LogFollower, LogHub
from smrun.queueing import Capacity, CapacityTimeout, NoCapacity, increase_hint, instance_types
from smrun.settings import OnCancel, Settings
from smrun.types import (
    Description,
    JobError,
    JobResult,
    LogSource,
    Outcome,
    Phase,
    Request,
)
from smrun.watch import Update
from smrun.watch.status import NotFound, StatusWatch, Subscription, Unseen


@dataclass
class _HookContext:
    """What a kind's hooks see of their job (:class:`smrun.kind.JobContext`)."""

    aws: Aws
    key: str
    name: str
    settings: Settings
    publish: Callable[[Event], None]
    request: Request = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)

    async def call(self, service: str, operation: str, **params: Any) -> dict[str, Any]:
        return await self.aws.call(service, operation, **params)

    def notice(self, level: str, message: str, **fields: Any) -> None:
        self.publish(Notice(self.key, level, message, fields, time=time.time()))


class Job:
    """Handle on one job of a run: ``await job.wait()``, ``await job.stop()``,
    ``async for event in job.events()``, ``async for line in job.logs()``."""

    def __init__(
        self,
        *,
        aws: Aws,
        bus: Bus,
        kind: Kind,
        key: str,
        request: Request,
        run_id: str,
        settings: Settings,
        watch: StatusWatch,
        logs: LogHub | None = None,
        timeout: float | None = None,
        tokens: dict[str, str] | None = None,
        on_token: Callable[[str, str], None] | None = None,
        options: Mapping[str, Any] | None = None,
        capacity: Capacity | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key = key
        self.kind = kind
        self.run_id = run_id
        self.timeout = timeout
        self._aws = aws
        self._bus = bus
        self._status = watch
        self._logs = logs
        # shared reading when the kind's status is listed (many jobs); a few jobs
        # read their streams themselves; decided once, so a drain reads alike
        self._shared_logs = watch.watch(kind).enlist() and logs is not None
        self._settings = settings
        self._clock = clock
        self._request = request
        self._capacity = capacity
        self._holds: frozenset[str] | None = None  # instance types, once created or attached
        self.name: str = str(request[kind.name_field])
        self.created_by_us = False
        # what cancellation does to a running job; the run may change it until then
        self.on_cancel: OnCancel = settings.on_cancel
        self.result: JobResult | None = None
        self.tokens: dict[str, str] = dict(tokens or {})
        self._on_token = on_token
        self._history: list[Event] = []  # every event of this job but its log lines
        self._done = anyio.Event()
        self._subscription: Subscription | None = None  # while the job waits for an update
        self._stop_asked = False  # Job.stop() or cancellation
        self._stop_sent = False
        self._create_sent = False
        self._timed_out = False
        self._sources: list[LogSource] = kind.default_log_sources(self.name)
        self._context = _HookContext(
            aws, key, self.name, settings, self.publish, request, options=dict(options or {})
        )

    # --- the handle -------------------------------------------------------

    async def wait(self) -> JobResult:
        await self._done.wait()
        assert self.result is not None
        return self.result

    @property
    def done(self) -> bool:
        return self._done.is_set()

    async def stop(self) -> None:
        """Ask SageMaker to stop the job; the job then ends as STOPPED_BY_US."""
        self._stop_asked = True
        if self._subscription is not None:
            self._subscription.interrupt()

    async def events(self) -> AsyncIterator[Event]:
        """This job's events, ending after ``Finished``: its status history
        first (submitted, status changes, notices, kept from the start), then
        everything live, log lines included. Log lines are not kept for a job
        nobody iterates (a long job's would pile up), so those start when
        iteration does."""
        # subscribe, then copy the history: nothing can be published in between
        with self._bus.subscribe(lambda e: e.job == self.key) as stream:
            for event in list(self._history):
                yield event
                if isinstance(event, Finished):
                    return
            async for event in stream:
                yield event
                if isinstance(event, Finished):
                    return

    async def logs(self) -> AsyncIterator[LogLine]:
        async for event in self.events():
            if isinstance(event, LogLine):
                yield event

    def publish(self, event: Event) -> None:
        if not isinstance(event, LogLine):
            self._history.append(event)
        self._bus.publish(event)

    # --- the lifecycle ----------------------------------------------------

    async def drive(self) -> JobResult:
        """Run the lifecycle to its end; the engine calls this once, in its task group.

        Error handling: every failure of the job itself (an AWS error, a
        botocore error, a bug in a hook) becomes the job's outcome, with a
        reason; only cancellation propagates, after a shielded cleanup."""
        try:
            result = await self._run()
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                result = await self._after_cancel()
                self._finish(result)
            raise
        except Unseen as error:
            result = self._result(None, Outcome.UNKNOWN, reason=str(error))
        except JobError as error:
            result = self._result(None, Outcome.FAILED, reason=str(error))
        except Exception as error:  # an AWS answer, a botocore error, or a bug in a hook
            if not is_aws_error(error):
                self.publish(Notice(
                    self.key, "error", f"internal error while driving {self.name}: {error!r}",
                    {"traceback": "".join(traceback.format_exception(error))},
                    time=self._clock(),
                ))
            result = self._result(None, Outcome.FAILED, reason=describe(error))
        self._finish(result)
        return result

    def _warn(self, message: str) -> None:
        self.publish(Notice(self.key, "warning", message, time=self._clock()))

    def _finish(self, result: JobResult) -> None:
        if self._done.is_set():
            return
        self._status.watch(self.kind).discharge()
        if self._capacity is not None and self._holds is not None:
            self._capacity.ended(self._holds)
        self.result = result
        self.publish(Finished(self.key, result, time=self._clock()))
        self._done.set()

    async def _run(self) -> JobResult:
        description = await self._created()
        terminal = anyio.Event()
        follower = self._follower(self._sources)
        failure: Exception | None = None
        drained = anyio.Event()

        async def follow() -> None:
            try:
                await follower.run(terminal)
            except Exception as error:
                if not is_aws_error(error):
                    raise
                # the job's outcome does not depend on its logs: say so and go on
                self._warn(f"cannot read the logs of {self.name} ({describe(error)}); "
                           "following its status without them")
            drained.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(follow)
            try:
                description = await self._watch(description, follower)
            except Exception as error:  # re-raised below, outside the task group
                failure = error
            terminal.set()
            await self._await_drain(tg.cancel_scope, drained)
        if failure is not None:
            raise failure
        if self._timed_out and self._phase(description) is Phase.RUNNING:
            return await self._unstoppable_timeout(description)
        return self._final_result(await self._enrich(description))

    async def _created(self) -> Description:
        """Attach or create; a create refused for capacity waits in the run's
        :class:`~smrun.queueing.Capacity` queue and is tried again."""
        capacity = self._capacity
        types = instance_types(self._request)
        refused = capacity.ahead(types) if capacity is not None else None
        if refused is not None:  # others wait for what this would take: in line behind them
            self._waiting_notice(refused)
            await self._wait_for_capacity(refused, again=False, counted=False)
        while True:
            try:
                # a create that can't be sent (SageMaker unreachable) is bounded like a describe
                with anyio.fail_after(self._settings.unknown_after):
                    description = await self._attach_or_create()
            except TimeoutError:
                raise Unseen(f"could not reach SageMaker to create or find {self.name} for "
                             f"{self._settings.unknown_after:.0f}s") from None
            except NoCapacity as error:
                if capacity is None:
                    raise JobError(f"{error.message} ({increase_hint(error.quota)})") from None
                if refused is None:
                    self._waiting_notice(error, f" (SageMaker: {error.message})")
                await self._wait_for_capacity(error, again=refused is not None)
                refused = error
                continue
            if capacity is not None:
                if refused is not None:
                    capacity.granted(refused.quota)
                self._holds = types
                capacity.started(types)
            return description

    def _waiting_notice(self, refused: NoCapacity, why: str = "") -> None:
        self._warn(f"waiting for capacity: {refused.quota}; {self.name} is created "
                   f"when a job of this run that could free it ends{why}")

    async def _wait_for_capacity(
        self, refused: NoCapacity, *, again: bool, counted: bool = True
    ) -> None:
        assert self._capacity is not None
        try:
            await self._capacity.wait(self.key, refused, again=again, counted=counted)
        except CapacityTimeout as timeout:
            raise JobError(f"{self.name} could not be created: {timeout}; "
                           f"{increase_hint(refused.quota)}") from None

    async def _await_drain(self, scope: anyio.CancelScope, drained: anyio.Event) -> None:
        """A job's streams end, so its drain runs to the last line however long
        the Logs budget makes it wait; an endpoint's never end, so its drain is cut
        at ``drain_limit``."""
        limit = self._settings.drain_limit
        if not self.kind.logs_end:
            scope.deadline = anyio.current_time() + limit
            return
        with anyio.move_on_after(limit):
            await drained.wait()
        if not drained.is_set():
            self.publish(Notice(
                self.key, "warning",
                f"still reading the last log lines after {limit:.0f}s "
                "(the CloudWatch Logs budget is busy); no line is skipped",
                time=self._clock(),
            ))

    def _follower(self, sources: list[LogSource]) -> Follower:
        if self._shared_logs:
            assert self._logs is not None
            return self._logs.follow(self.key, sources, self.publish, tokens=self.tokens,
                                     on_token=self._save_token, flush=self._bus.flush)
        s = self._settings
        return LogFollower(
            call=self._aws.call,
            job=self.key,
            sources=sources,
            publish=self.publish,
            poll_interval=s.log_poll,
            idle_max=s.log_idle_max,
            discover_interval=s.log_discover,
            discover_max=s.log_discover_max,
            drain_grace=s.drain_grace,
            tokens=self.tokens,
            on_token=self._save_token,
            flush=self._bus.flush,
        )

    def _save_token(self, stream: str, token: str) -> None:
        self.tokens[stream] = token
        if self._on_token is not None:
            self._on_token(stream, token)

    def _phase(self, description: Description) -> Phase:
        return self.kind.phase(description, self._context.state)

    async def _describe(self, priority: Priority = Priority.FINISH) -> Description | None:
        """The resource's description, or None when SageMaker says it does not exist."""
        key: dict[str, Any] = {self.kind.name_field: self.name}
        try:
            response = await self._aws.call(
                "sagemaker", self.kind.describe, priority=priority, **key
            )
        except Exception as error:
            if is_not_found(error):
                return None
            raise
        if self.kind.describe_member is not None:
            return dict(response.get(self.kind.describe_member) or {})
        return response

    @property
    def _lean(self) -> bool:
        """Whether the create's own "already exists" answer can stand in for a
        describe before it: a kind without hooks that look at (or update) what
        exists. Creating then costs one call, and the first status comes from
        the watcher."""
        k = self.kind
        return k.update_hook is None and k.phase_hook is None and k.create_hook is None

    async def _attach_or_create(self) -> Description:
        digest = request_hash(self._request, self.kind.name_field)
        existing = None if self._lean else await self._describe(Priority.LIVE)
        attached = existing is not None
        updated = False
        if existing is not None and self.kind.update_hook is not None:
            try:
                updated = await self.kind.update_hook(self._context, existing)
            except Exception as error:
                if is_limit_exceeded(error):
                    raise NoCapacity(error_message(error)) from error
                raise
            if updated:
                existing = await self._describe()
                if existing is None:
                    raise JobError(f"{self.name} disappeared while it was being updated")
        if existing is None:
            request = self._request
            if self.kind.taggable:
                request = with_our_tags(request, self.run_id, self.key, digest)
            # from here a cancellation may leave a resource that exists without
            # our knowing it: the cleanup then looks for it before giving up
            self._create_sent = True
            created = False
            try:
                if self.kind.create_hook is not None:
                    await self.kind.create_hook(self._context, request)
                else:
                    await self._aws.call("sagemaker", self.kind.create, priority=Priority.LIVE,
                                         **request)
                self.created_by_us = created = True
            except Exception as error:
                if is_limit_exceeded(error):
                    self._create_sent = False  # refused: nothing was made
                    raise NoCapacity(error_message(error)) from error
                if not is_already_exists(error):
                    raise
                attached = True  # a restart, a race, or a retried create that had gone through
            if created and self._lean:
                existing = self._just_created()
            else:
                existing = await self._describe()
            if existing is None:
                raise JobError(f"{self.kind.describe} cannot find {self.name} after creating it")
        adopted = updated or (self.kind.adopt is not None and attached
                              and self.kind.adopt(existing, self._request))
        if attached and not adopted:
            await self._check_ours(existing, digest)
        self.publish(
            Submitted(self.key, self.kind.name, self.name, attached, time=self._clock())
        )
        return existing

    def _just_created(self) -> Description:
        """What is known of a resource this job has just created, without asking:
        its name, and a creation time close enough for the job's deadline (the
        first update brings SageMaker's own)."""
        return {
            self.kind.name_field: self.name,
            "CreationTime": datetime.fromtimestamp(self._clock(), tz=timezone.utc),
        }

    async def _check_ours(self, description: Description, digest: str) -> None:
        """Attach only to the resource this run and job created with this request."""
        arn = description.get(self.kind.arn_field)
        if not isinstance(arn, str) or not arn:
            return
        tags = await self._list_tags(arn)
        if not is_ours(tags, self.run_id, self.key):
            raise JobError(
                f"{self.name} already exists and was not created by run {self.run_id!r} "
                f"for job {self.key!r}; choose another name"
            )
        if tags.get(TAG_HASH) != digest:
            raise JobError(
                f"{self.name} exists for this run and job but with a different request "
                f"(hash {tags.get(TAG_HASH)} != {digest}); refusing to attach to it"
            )

    async def _list_tags(self, arn: str) -> dict[str, str]:
        tags: dict[str, str] = {}
        params: dict[str, Any] = {"ResourceArn": arn}
        while True:
            page = await self._aws.call("sagemaker", "ListTags", **params)
            tags.update({t["Key"]: t["Value"] for t in page.get("Tags", [])})
            if not page.get("NextToken"):
                return tags
            params["NextToken"] = page["NextToken"]

    def _deadline(self, description: Description) -> float | None:
        if self.timeout is None:
            return None
        created = description.get("CreationTime")
        start = created.timestamp() if isinstance(created, datetime) else self._clock()
        return start + self.timeout

    async def _watch(self, description: Description, follower: Follower) -> Description:
        """Follow the status until it is terminal, or until the job's timeout for
        a kind that can't be stopped (the description returned is then not terminal).

        The updates come from the engine's watcher for the kind (a describe of
        this job, a List* summary, or an event); a terminal status seen in a
        summary is described once more, because the outputs are read from it."""
        created = description.get("CreationTime")
        subscription = self._status.subscribe(
            self.kind, self.name, self._describe,
            created.timestamp() if isinstance(created, datetime) else None,
            warn=self._warn,
        )
        try:
            return await self._follow_status(description, follower, subscription)
        finally:
            self._status.watch(self.kind).unsubscribe(subscription)

    async def _follow_status(
        self, description: Description, follower: Follower, subscription: Subscription
    ) -> Description:
        kind = self.kind
        last: tuple[str, str | None] | None = None
        # when the last transition told began: a job this run created is told
        # from its first one, one it attached to (a restart) from where it is
        since: float | None = float("-inf") if self.created_by_us else None
        deadline = self._deadline(description)
        while True:
            status = str(description.get(kind.status_field, ""))
            secondary = (
                description.get(kind.secondary_status_field)
                if kind.secondary_status_field
                else None
            )
            # a resource without a status (a workteam) has no status changes to tell
            changed = (status, secondary) != last and bool(status or secondary)
            transitions = _transitions(description)
            if transitions is not None:
                # a poll that came after two transitions shows only the second:
                # the description's list gives the ones in between
                for skipped in _skipped(transitions, last[1] if last else None, since):
                    # a training job is InProgress until its last transition
                    last = (last[0] if last else "InProgress", str(skipped["Status"]))
                    self.publish(StatusChanged(
                        self.key, last[0], last[1], _message(skipped),
                        _epoch(skipped.get("StartTime")), time=self._clock(),
                    ))
                since = _epoch(transitions[-1].get("StartTime"))
            elif changed:
                since = None  # what is told next has no place in a list
            if (status, secondary) != last and changed:
                last = (status, secondary)
                if follower.stats.streams == 0:
                    follower.poke()  # its containers may have started writing
                self.publish(
                    StatusChanged(
                        self.key, status, secondary,
                        _message(transitions[-1]) if transitions else None,
                        _epoch(description.get("LastModifiedTime")), time=self._clock(),
                    )
                )
            # asked on the terminal status too: sources that appeared since the
            # last poll (a tuning job's last children) are drained with the rest
            if kind.log_sources is not None:
                self._sources = await kind.log_sources(self._context, description)
                follower.set_sources(self._sources)
            if self._phase(description) is not Phase.RUNNING:
                return description
            if deadline is not None and self._clock() >= deadline and not self._stop_sent:
                self._timed_out = True
                if kind.stop is None:
                    return description
                self._stop_asked = True
            if self._stop_asked and not self._stop_sent:
                await self._send_stop()
                subscription.poke()
            until = deadline if deadline is not None and not self._stop_sent else None
            update = await self._next_update(subscription, until)
            if update is not None:
                description = await self._apply(description, update)

    async def _next_update(self, subscription: Subscription, until: float | None) -> Update | None:
        """The next update, or None at ``until`` or when Job.stop() cut the wait short."""
        self._subscription = subscription
        try:
            if self._stop_asked and not self._stop_sent:
                return None
            return await subscription.next(until)
        except NotFound as error:
            raise JobError(str(error)) from None
        finally:
            self._subscription = None

    async def _apply(self, description: Description, update: Update) -> Description:
        """The job's description after an update: a whole description replaces
        it; a summary is merged in, and described once it is terminal."""
        if update.complete:
            return dict(update.facts)
        merged = {**description, **update.facts}
        if "SecondaryStatusTransitions" not in update.facts:
            # the list read before the summary's change would be stale
            merged.pop("SecondaryStatusTransitions", None)
        if self._phase(merged) is Phase.RUNNING:
            return merged
        fresh = await self._describe()
        if fresh is None:
            raise JobError(f"{self.name} disappeared (its describe says not found)")
        return fresh

    async def _unstoppable_timeout(self, description: Description) -> JobResult:
        """The timeout of a kind SageMaker can't stop (an endpoint): the job fails,
        and the kind's cancel hook cleans up or says what is left behind."""
        reason = (f"timed out: still {description.get(self.kind.status_field) or 'running'} "
                  f"{self.timeout:.0f}s after creation")
        if self.kind.cancel_hook is not None:
            reason += "; " + await self.kind.cancel_hook(self._context, description)
        return self._result(description, Outcome.FAILED, reason=reason)

    async def _enrich(self, description: Description) -> Description:
        if self.kind.enrich is None:
            return description
        return await self.kind.enrich(self._context, description)

    async def _send_stop(self) -> None:
        self._stop_sent = True
        if self.kind.stop is None:
            return
        try:
            key: dict[str, Any] = {self.kind.name_field: self.name}
            await self._aws.call("sagemaker", self.kind.stop, priority=Priority.FINISH, **key)
        except Exception as error:
            if not is_already_terminal(error):  # the next describe tells the outcome
                raise

    async def _after_cancel(self) -> JobResult:
        """Shielded cleanup after cancellation: stop (or detach), wait, drain logs."""
        description, problem = await self._look()
        if description is None and problem is None and self._create_sent:
            # the create was in flight: SageMaker may still be creating it
            with anyio.move_on_after(self._settings.create_settle):
                while description is None:
                    await anyio.sleep(self._settings.poll_min)
                    description, problem = await self._look()
        if description is None:
            if problem is None:
                return self._result(None, Outcome.NOT_STARTED, reason="cancelled before creation")
            return await self._cancel_unseen(problem)
        if self._phase(description) is not Phase.RUNNING:
            await self._drain(description)
            return self._final_result(await self._enrich(description))
        if self.on_cancel is OnCancel.DETACH or self.kind.stop is None:
            await self._drain(description)
            reason = "left running on cancellation"
            if self.kind.cancel_hook is not None:
                reason = await self.kind.cancel_hook(self._context, description)
            elif self.kind.stop is None:
                reason = f"{self.kind.name} {self.name} cannot be stopped; left as it is"
            return self._result(description, Outcome.DETACHED, reason=reason)
        self._stop_asked = True
        with anyio.move_on_after(self._settings.stop_grace):
            await self._send_stop()
            while self._phase(description) is Phase.RUNNING:
                await anyio.sleep(self._settings.poll_min)
                description = (await self._look())[0] or description
        await self._drain(description)
        if self._phase(description) is not Phase.RUNNING:
            description = await self._enrich(description)
        if self._phase(description) is Phase.RUNNING:
            return self._result(
                description,
                Outcome.UNKNOWN,
                reason=f"asked to stop; still {description.get(self.kind.status_field)} "
                f"after {self._settings.stop_grace:.0f}s",
            )
        return self._final_result(description)

    async def _cancel_unseen(self, problem: str) -> JobResult:
        """Cancelled while the job can't be described: a job that may exist is
        stopped all the same (a stop needs no describe), and its outcome is Unknown."""
        may_exist = self._create_sent or self._stop_sent or self.created_by_us or any(
            isinstance(e, Submitted) for e in self._history
        )
        reason = f"cancelled; could not describe {self.name}: {problem}"
        if not may_exist:
            return self._result(None, Outcome.UNKNOWN, reason=reason)
        if self.on_cancel is not OnCancel.DETACH and self.kind.stop is not None:
            try:
                with anyio.fail_after(self._settings.stop_grace):
                    await self._send_stop()
                reason += f"; {self.kind.stop} was sent"
            except Exception as error:
                reason += f"; {self.kind.stop} failed too: {describe(error)}"
        return self._result(None, Outcome.UNKNOWN, reason=reason)

    async def _look(self) -> tuple[Description | None, str | None]:
        """A describe during cleanup: (description, None), (None, None) when it does
        not exist, or (None, what went wrong) when it can't be described."""
        try:
            with anyio.fail_after(self._settings.stop_grace):
                return await self._describe(), None
        except TimeoutError:
            return None, f"no answer within {self._settings.stop_grace:.0f}s"
        except Exception as error:
            if not is_aws_error(error):
                raise
            return None, describe(error)

    async def _drain(self, description: Description) -> None:
        sources = self._sources
        if self.kind.log_sources is not None:
            try:
                sources = await self.kind.log_sources(self._context, description)
            except Exception as error:
                if not is_aws_error(error):
                    raise
                self._warn(f"cannot tell which log streams to drain ({describe(error)}); "
                           f"draining the {len(sources)} source(s) known so far")
        follower = self._follower(sources)
        done = anyio.Event()
        done.set()
        with anyio.move_on_after(self._settings.drain_limit):
            await follower.run(done)

    # --- results ----------------------------------------------------------

    def _final_result(self, description: Description) -> JobResult:
        phase = self._phase(description)
        reason = description.get(self.kind.failure_reason_field)
        if phase is Phase.SUCCEEDED:
            return self._result(description, Outcome.SUCCEEDED)
        if phase is Phase.STOPPED:
            if self._timed_out:
                return self._result(
                    description, Outcome.FAILED,
                    reason=f"timed out: still running {self.timeout:.0f}s after creation",
                )
            if self._stop_sent:
                return self._result(description, Outcome.STOPPED_BY_US, reason=reason)
            secondary = (
                description.get(self.kind.secondary_status_field)
                if self.kind.secondary_status_field else None
            )
            why = reason or (f"stopped ({secondary})" if secondary else "stopped outside this run")
            return self._result(description, Outcome.FAILED, reason=why)
        return self._result(description, Outcome.FAILED, reason=reason or "failed")

    def _result(
        self, description: Description | None, outcome: Outcome, *, reason: str | None = None
    ) -> JobResult:
        d = description or {}
        created = d.get("CreationTime")
        arn = d.get(self.kind.arn_field)
        return JobResult(
            key=self.key,
            kind=self.kind.name,
            name=self.name,
            outcome=outcome,
            status=d.get(self.kind.status_field),
            failure_reason=reason,
            outputs=self.kind.outputs(d) if d else {},
            details=self.kind.details(d) if d else {},
            arn=arn if isinstance(arn, str) and arn else None,
            created=created if isinstance(created, datetime) else None,
            ended=self.kind.end_time(d),
            attached=not self.created_by_us and description is not None,
        )


def _transitions(description: Description) -> list[Mapping[str, Any]] | None:
    """The description's SecondaryStatusTransitions, or None where it has none
    (another kind, or a List* summary)."""
    found = description.get("SecondaryStatusTransitions")
    if not isinstance(found, list):
        return None
    return [t for t in found if isinstance(t, Mapping)] or None


def _skipped(
    transitions: list[Mapping[str, Any]], told: str | None, since: float | None
) -> list[Mapping[str, Any]]:
    """The transitions before the current (last) one that began after the last
    one told (``since``). When that is not known because the last state told
    came without a list, it is found by its status; when nothing was told yet
    either (a job attached to), there are none."""
    if since is None:
        if told is None:
            return []
        for earlier in reversed(transitions[:-1]):
            if earlier.get("Status") == told:
                since = _epoch(earlier.get("StartTime"))
                break
        if since is None:
            return []
    found: list[Mapping[str, Any]] = []
    for transition in transitions[:-1]:
        start, state = _epoch(transition.get("StartTime")), transition.get("Status")
        previous = found[-1]["Status"] if found else told
        if start is not None and start > since and state and state != previous:
            found.append(transition)
    return found


def _message(transition: Mapping[str, Any]) -> str | None:
    message = transition.get("StatusMessage")
    return str(message) if message else None





def _epoch(value: Any) -> float | None:
    return value.timestamp() if isinstance(value, datetime) else None
