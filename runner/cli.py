"""The ``smrun`` command line. Thin: every command is a library call.

An entry point: it passes the built-in kinds and components (``handlers``) to
the library. Error handling: bad input and a bad environment (credentials,
region, endpoints) exit 2 with one message naming the problem and its fix,
before anything is created; nothing a user of the CLI sees is a traceback or
an exception group (``SMRUN_DEBUG=1`` shows the traceback of a bug).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import anyio

from smrun.aws import Aws, AwsConfig, EnvironmentProblem
from smrun.console import Console, Fold, redact_text
from smrun.daemon import DaemonConfig, DaemonError, DaemonSettings, run_daemon
from smrun.daemon.client import Client, ClientError
from smrun.daemon.follow import follow_run, log_text, run_table, runs_table
from smrun.daemon.server import check_token, read_token
from smrun.emulator import Quotas, serve
from smrun.engine import Runner
from smrun.handlers import COMPONENTS, KINDS
from smrun.iam import daemon_policies, policies, resolve_kinds, usage_of
from smrun.journal import Journal, default_state_dir
from smrun.kfp import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    ComponentRun,
    markdown_summary,
    parse_tags,
    run_component,
    with_tags,
)
from smrun.manifest import DEFAULT_MAX_MATRIX, Manifest, ManifestError, load_manifest
from smrun.outputs import summary, write_json, write_output_file
from smrun.settings import OnCancel, Settings
from smrun.types import JobResult
from smrun.v1 import Component
from smrun.watch.setup import DEFAULT_NAME, setup_events, teardown_events
from smrun.watch.status import Strategy

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}


def _common_aws(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--region", help="AWS region (default: the standard AWS configuration)")
    parser.add_argument("--endpoint-url", help="SageMaker endpoint URL")
    parser.add_argument("--logs-endpoint-url", help="CloudWatch Logs endpoint URL")
    parser.add_argument("--sts-endpoint-url",
                        help="STS endpoint URL (for the pre-flight identity check)")
    parser.add_argument("--assume-role", help="role ARN to assume for every call")
    parser.add_argument("--profile", help="AWS profile name")
    parser.add_argument("--sqs-endpoint-url", help="SQS endpoint URL (the events queue)")
    parser.add_argument("--events-endpoint-url", help="EventBridge endpoint URL")
    parser.add_argument("--s3-endpoint-url", help="S3 endpoint URL (manifests a daemon's "
                        "submissions queue names by s3:// URI)")


def _max_matrix(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-matrix", type=int, default=DEFAULT_MAX_MATRIX, metavar="N",
                        help="the most items a matrix job may expand to "
                        f"(default {DEFAULT_MAX_MATRIX}): more is an error, not an accident")


def _quota(parser: argparse.ArgumentParser, *, local: bool = False) -> None:
    parser.add_argument("--quota", action="append", default=[], metavar="NAME=N",
                        help=("with --local: " if local else "") + "an account quota the "
                        "emulator enforces, by its Service Quotas name, e.g. 'ml.m5.large "
                        "for training job usage=2' (repeat for more; none by default)")


def parse_quotas(texts: Sequence[str]) -> dict[str, float]:
    """``NAME=N`` arguments as a mapping (the emulator checks the names)."""
    quotas: dict[str, float] = {}
    for text in texts:
        name, sep, value = text.rpartition("=")
        try:
            limit = float(value)
        except ValueError:
            limit = -1.0
        if not sep or not name.strip() or limit < 0:
            raise ValueError(f"--quota {text!r}: give NAME=N, N a number >= 0")
        quotas[name.strip()] = limit
    return quotas


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smrun", description="SageMaker jobs on one asyncio engine."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run every job of a manifest")
    run.add_argument("manifest", nargs="?",
                     help="manifest YAML file ('-' for standard input)")
    run.add_argument("--manifest-text", help="the manifest itself, as YAML text")
    run.add_argument("--local", action="store_true",
                     help="start the embedded SageMaker emulator and run against it")
    run.add_argument("--run-id", help="run id: the same id reattaches to the same jobs")
    run.add_argument("--log-format", choices=["console", "json"],
                     help="default: console on a terminal, json otherwise")
    run.add_argument("--output-json", help="write every job's result and outputs here")
    run.add_argument("--task-id", help="with --run-id: a KFP task id; names the jobs per task")
    run.add_argument("--tags", help="tags for every job, a JSON or YAML mapping")
    run.add_argument("--outputs-path", help="write {job: {output: value}} as JSON here")
    run.add_argument("--ui-summary-path", help="write a Markdown summary (for the KFP UI) here")
    run.add_argument("--on-cancel", choices=[o.value for o in OnCancel], default="stop")
    run.add_argument("--stop-grace", type=float, help="seconds to wait for Stopped on cancel")
    run.add_argument("--timing", choices=["default", "fast"],
                     help="polling cadence; fast (sub-second, for an emulator) is the "
                     "default with --local")
    run.add_argument("--state-dir",
                     help="where the journal keeps log positions and results across restarts "
                     "(default: $SMRUN_STATE_DIR or ~/.local/state/smrun)")
    run.add_argument("--watch", choices=[s.value for s in Strategy], default="auto",
                     help="how job status is followed: describe each job, one List* per kind, "
                     "or SageMaker's events from an SQS queue (auto: list once a kind has "
                     "a few jobs; events when --events-queue-url is given)")
    run.add_argument("--events-queue-url",
                     help="the SQS queue of SageMaker's state-change events "
                     "(`smrun events setup` creates it and prints its URL)")
    run.add_argument("--expand", action="store_true",
                     help="show every item of a matrix in the live table and the summary "
                     "(default: one row a matrix)")
    _max_matrix(run)
    _quota(run, local=True)
    _common_aws(run)

    check = sub.add_parser("validate", help="validate a manifest without creating anything")
    check.add_argument("manifest", nargs="?")
    check.add_argument("--manifest-text", help="the manifest itself, as YAML text")
    _max_matrix(check)

    for component in COMPONENTS.values():
        _component_parser(sub, component)

    iam = sub.add_parser("iam-policy", help="print least-privilege IAM policies (JSON) for "
                         "the setup identity, the KFP pods and the SageMaker execution role")
    iam.add_argument("manifest", nargs="?",
                     help="a manifest: its kinds, roles, buckets, images and keys")
    iam.add_argument("--kinds", help="comma-separated kinds or component names "
                     "(default without a manifest: every kind)")
    iam.add_argument("--role-arn", help="the SageMaker execution role the pods pass")
    iam.add_argument("--assume-role", help="the role the pods assume (smrun --assume-role)")
    iam.add_argument("--events-queue", help="the events queue the pods read (name or ARN)")

    iam.add_argument("--daemon", action="store_true",
                     help="the policies of `smrun daemon`'s role instead of the KFP pods'")
    iam.add_argument("--queue", help="with --daemon: its submissions queue (ARN or URL; its "
                     "dead-letter queue is the same name plus -dlq)")
    iam.add_argument("--manifest-bucket", action="append", default=[], metavar="BUCKET",
                     help="with --daemon: a bucket (or s3://bucket/prefix) it reads "
                     "manifests from")

    daemon = sub.add_parser("daemon", help="serve runs over HTTP: many runs on one engine, "
                            "kept across restarts")
    daemon.add_argument("--listen", default="127.0.0.1:8080", metavar="HOST:PORT",
                        help="where the API and the web view listen (default 127.0.0.1:8080; "
                        "any other address than loopback needs a token)")
    state = daemon.add_mutually_exclusive_group()
    state.add_argument("--state-dir", help="keep runs in SQLite here (default: $SMRUN_STATE_DIR "
                       "or ~/.local/state/smrun)")
    state.add_argument("--database", default=os.environ.get("SMRUN_DATABASE_URL"),
                       metavar="URL", help="keep runs in PostgreSQL (postgresql://...), "
                       "shared by several daemons (default: $SMRUN_DATABASE_URL)")
    daemon.add_argument("--local", action="store_true",
                        help="start the embedded SageMaker emulator and run against it")
    daemon.add_argument("--token-file", help="the bearer token clients must send "
                        "(default: $SMRUN_TOKEN)")
    daemon.add_argument("--queue", default=os.environ.get("SMRUN_QUEUE_URL"), metavar="SQS_URL",
                        help="also take submissions from this SQS queue "
                        "(default: $SMRUN_QUEUE_URL)")
    daemon.add_argument("--on-shutdown", choices=[o.value for o in OnCancel], default="detach",
                        help="what SIGTERM does to running jobs: detach (default: they go on "
                        "in SageMaker and are taken up again) or stop")
    daemon.add_argument("--owner", default=os.environ.get("SMRUN_DAEMON_ID"),
                        help="this daemon's name in the run leases (default: host, pid and "
                        "a random part; with --state-dir, the directory)")
    daemon.add_argument("--max-runs", type=int, default=200,
                        help="runs this daemon drives at once (default 200)")
    daemon.add_argument("--timing", choices=["default", "fast"],
                        help="polling cadence; fast is the default with --local")
    daemon.add_argument("--lease-ttl", type=float, default=DaemonSettings.lease_ttl,
                        metavar="SECONDS", help="how long a run stays this daemon's after its "
                        f"last heartbeat (default {DaemonSettings.lease_ttl:.0f}); a dead "
                        "daemon's runs are taken over this long after it died")
    daemon.add_argument("--heartbeat", type=float, default=DaemonSettings.heartbeat,
                        metavar="SECONDS", help="how often leases are renewed and free runs "
                        f"claimed (default {DaemonSettings.heartbeat:.0f})")
    _max_matrix(daemon)
    _quota(daemon, local=True)
    _common_aws(daemon)

    def client(name: str, help: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help)
        command.add_argument("--daemon", dest="daemon_url",
                             default=os.environ.get("SMRUN_DAEMON_URL", "http://127.0.0.1:8080"),
                             metavar="URL", help="the daemon (default: $SMRUN_DAEMON_URL or "
                             "http://127.0.0.1:8080); its token comes from $SMRUN_TOKEN")
        command.add_argument("--json", action="store_true", help="JSON for scripts")
        return command

    submit = client("submit", "submit a manifest to a daemon")
    submit.add_argument("manifest", help="manifest YAML file ('-' for standard input)")
    submit.add_argument("--run-id", help="makes the submission idempotent")
    submit.add_argument("--on-cancel", choices=[o.value for o in OnCancel])
    submit.add_argument("--follow", action="store_true",
                        help="then show the run live until it ends, as `smrun run` does")
    status = client("status", "a daemon's runs, or one run's jobs")
    status.add_argument("run_id", nargs="?")
    status.add_argument("--follow", action="store_true", help="live, until the run ends")
    logs = client("logs", "a run's log lines (or one job's)")
    logs.add_argument("run_id")
    logs.add_argument("job", nargs="?")
    logs.add_argument("--follow", "-f", action="store_true",
                      help="keep following until the job (or run) ends")
    stop = client("stop", "stop a run (or one job) on a daemon")
    stop.add_argument("run_id")
    stop.add_argument("job", nargs="?")

    events = sub.add_parser("events", help="create or remove the EventBridge rule and SQS "
                            "queue that bring SageMaker's state changes to `--watch events`")
    events.add_argument("action", choices=["setup", "teardown"])
    events.add_argument("--name", default=DEFAULT_NAME,
                        help=f"the rule and queue name (default {DEFAULT_NAME}; one per "
                        "consuming process: SQS gives each message to one reader)")
    _common_aws(events)

    emu = sub.add_parser("emulator", help="run the local SageMaker, CloudWatch Logs, SQS and "
                         "EventBridge emulator")
    emu.add_argument("--host", default="127.0.0.1")
    emu.add_argument("--port", type=int, default=4566)
    emu.add_argument("--region", default="us-east-1")
    emu.add_argument("--events-endpoint-url", metavar="URL",
                     help="publish every job state change to this EventBridge endpoint")
    _quota(emu)
    return parser


def _component_parser(sub: Any, component: Component) -> None:
    """``smrun <component>`` with v1's argument names; values are parsed by the library."""
    parser = sub.add_parser(component.name, help=f"{component.title} (KFP v1 arguments)",
                            description=component.description)
    for spec in component.all_inputs:
        default = "" if spec.required else None
        parser.add_argument(f"--{spec.name}", required=spec.required and spec.name == "region",
                            default=default, help=spec.description or None)
    for output in component.outputs:
        parser.add_argument(f"--{output.name}_output_path", default=f"/tmp/{output.name}",
                            help=f"file to write the {output.name} output to")
    parser.add_argument("--ui_summary_output_path",
                        help="write a Markdown summary with console and log links here")
    parser.add_argument("--run_id", help="the KFP run id: names the job so that a restarted "
                        "step attaches to it")
    parser.add_argument("--task_id", help="the KFP task id (with --run_id)")
    parser.add_argument("--logs_endpoint_url", help="CloudWatch Logs endpoint URL")
    parser.add_argument("--sts_endpoint_url",
                        help="STS endpoint URL (for the pre-flight identity check)")
    parser.add_argument("--log_format", choices=["console", "json"],
                        help="default: console on a terminal, json otherwise")
    parser.add_argument("--timing", choices=["default", "fast"],
                        help="polling cadence; fast is sub-second, for an emulator")
    parser.set_defaults(component=component)


def _aws_config(args: argparse.Namespace, region: str | None = None) -> AwsConfig:
    return AwsConfig(
        region=args.region or region,
        endpoint_url=args.endpoint_url,
        logs_endpoint_url=args.logs_endpoint_url,
        sts_endpoint_url=args.sts_endpoint_url,
        assume_role=args.assume_role,
        profile=args.profile,
        sqs_endpoint_url=getattr(args, "sqs_endpoint_url", None),
        events_endpoint_url=getattr(args, "events_endpoint_url", None),
        s3_endpoint_url=getattr(args, "s3_endpoint_url", None),
    )


def _load(args: argparse.Namespace) -> Manifest:
    limit = getattr(args, "max_matrix", DEFAULT_MAX_MATRIX)
    if args.manifest_text is not None:
        return load_manifest(args.manifest_text + "\n", kinds=KINDS, source="<manifest text>",
                             max_matrix=limit)
    if args.manifest is None:
        raise ManifestError(["give a manifest file, '-' or --manifest-text"])
    if args.manifest == "-":
        return load_manifest(sys.stdin.read(), kinds=KINDS, source="<stdin>", max_matrix=limit)
    return load_manifest(args.manifest, kinds=KINDS, max_matrix=limit)


def folds_of(manifest: Manifest) -> list[Fold]:
    """A fold of the console for each matrix, by the metric a ``best(...)``
    reference of the manifest names for it (the first one, if several)."""
    best: dict[str, tuple[str, str]] = {}
    for key in manifest.order():
        for ref in manifest.references(key):
            if ref.aggregate == "best" and ref.job and ref.metric:
                best.setdefault(ref.job, (ref.metric, ref.direction or "min"))
    folds = []
    for matrix in manifest.matrices.values():
        metric, direction = best.get(matrix.key, (None, "min"))
        folds.append(Fold(matrix.key, matrix.items, metric=metric, direction=direction))
    return folds


def run_succeeded(manifest: Manifest, results: Mapping[str, JobResult]) -> bool:
    """Every plain job succeeded, and every matrix has its ``min_succeeded`` items."""
    if not results:
        return False
    plain = [k for k, spec in manifest.jobs.items() if spec.matrix is None]
    return all(manifest.satisfied(name, results) for name in [*plain, *manifest.matrices])


async def until_signal(work: Callable[[], Awaitable[object]]) -> int | None:
    """Run ``work``; SIGINT or SIGTERM cancels it (its cleanup stops the jobs).

    Returns the exit code for the signal caught, or None when ``work`` ended by
    itself; an exception of ``work`` is raised as it is (not in a group)."""
    caught: list[int] = []
    failed: list[Exception] = []
    async with anyio.create_task_group() as tg:

        async def watch_signals() -> None:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    caught.append(SIGNAL_EXIT.get(signal.Signals(signum), 1))
                    tg.cancel_scope.cancel()
                    return

        async def run_work() -> None:
            try:
                await work()
            except Exception as error:  # raised as itself below, not inside a group
                failed.append(error)
            tg.cancel_scope.cancel()

        tg.start_soon(watch_signals)
        tg.start_soon(run_work)
    if failed:
        raise failed[0]
    return caught[0] if caught else None


def _settings(args: argparse.Namespace, settings: Settings | None = None) -> Settings:
    """The timings: ``--timing fast`` (the default with ``--local``) for an emulator."""
    if settings is not None:
        return settings
    local = getattr(args, "local", False)
    fast = args.timing == "fast" or (local and args.timing != "default")
    return Settings.fast() if fast else Settings()


def _environment_error(command: str, problem: EnvironmentProblem) -> int:
    print(f"{command}: {problem.problem}\n  fix: {problem.fix}\n  nothing was created",
          file=sys.stderr)
    return EXIT_BAD_INPUT


async def run_command(args: argparse.Namespace, settings: Settings | None = None) -> int:
    try:
        manifest = _load(args)
        if args.tags:
            manifest = with_tags(manifest, parse_tags(args.tags), KINDS)
    except (ManifestError, ValueError) as error:
        print(f"smrun: invalid manifest\n{redact_text(str(error))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        quotas = Quotas(parse_quotas(args.quota)) if args.quota else None
    except ValueError as error:
        print(f"smrun: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if quotas is not None and not args.local:
        print("smrun: --quota sets the embedded emulator's quotas: it needs --local\n"
              "  fix: SageMaker's own quotas are in Service Quotas", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.watch == "events" and not args.events_queue_url:
        print("smrun: --watch events needs --events-queue-url\n"
              "  fix: create the queue with `smrun events setup` and pass the URL it prints",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    console = Console(fmt=args.log_format, expand=args.expand)
    overrides: dict[str, Any] = {"on_cancel": OnCancel(args.on_cancel)}
    if args.stop_grace is not None:
        overrides["stop_grace"] = args.stop_grace
    settings = Settings(**{**_settings(args, settings).__dict__, **overrides})
    run_id = args.run_id
    if run_id and args.task_id and "{{" not in args.task_id:
        run_id = f"{run_id}-{args.task_id}"  # a KFP step: one run per task

    journal = Journal.in_dir(args.state_dir or default_state_dir())
    runner = Runner(
        _aws_config(args, manifest.region),
        kinds=KINDS,
        settings=settings,
        run_id=run_id,
        local=args.local,
        local_quotas=quotas,
        sinks=[console],
        journal=journal,
        watch=args.watch,
        events_queue_url=args.events_queue_url,
    )
    console.plan({key: manifest.jobs[key].kind for key in manifest.order()})
    console.fold(folds_of(manifest))
    try:
        async with runner:
            caught = await until_signal(lambda: runner.run_manifest(manifest))
    except EnvironmentProblem as problem:
        console.close()
        return _environment_error("smrun", problem)
    finally:
        console.close()
        journal.close()
    results = {k: runner.results[k] for k in manifest.order() if k in runner.results}
    region = runner.identity.region if runner.identity else ""
    console.summary(results)
    if args.output_json:
        write_json(args.output_json, summary(results, runner.run_id))
    if args.outputs_path:
        write_output_file(args.outputs_path, {k: r.outputs for k, r in results.items()})
    if args.ui_summary_path:
        write_output_file(args.ui_summary_path,
                          markdown_summary(results, region, KINDS, COMPONENTS))
    if caught is not None:
        return caught
    return EXIT_OK if run_succeeded(manifest, results) else EXIT_FAILED


async def component_command(args: argparse.Namespace, settings: Settings | None = None) -> int:
    """``smrun <component>``: its job (or jobs) from v1 arguments (see :func:`run_component`)."""
    component: Component = args.component
    raw = {spec.name: getattr(args, spec.name) for spec in component.all_inputs}
    raw = {k: v for k, v in raw.items() if v is not None}
    console = Console(fmt=args.log_format)
    done: list[ComponentRun] = []

    async def work() -> None:
        done.append(await run_component(
            component,
            raw,
            output_paths={o.name: getattr(args, f"{o.name}_output_path")
                          for o in component.outputs},
            ui_summary_path=args.ui_summary_output_path,
            kfp_run_id=args.run_id,
            kfp_task_id=args.task_id,
            logs_endpoint_url=args.logs_endpoint_url,
            sts_endpoint_url=args.sts_endpoint_url,
            settings=_settings(args, settings),
            sinks=[console],
            kinds=KINDS,
            components=COMPONENTS,
        ))

    try:
        caught = await until_signal(work)
    except EnvironmentProblem as problem:
        return _environment_error(f"smrun {component.name}", problem)
    finally:
        console.close()
    if caught is not None:
        return caught
    outcome = done[0]
    if outcome.results:
        console.summary(outcome.results)
    elif outcome.result is not None:
        console.summary({component.key: outcome.result})
    if outcome.problem is not None:
        return _environment_error(f"smrun {component.name}", outcome.problem)
    if outcome.error and outcome.exit_code == EXIT_BAD_INPUT:
        print(f"smrun {component.name}: invalid arguments\n{outcome.error}", file=sys.stderr)
    return outcome.exit_code


async def main_async(argv: Sequence[str] | None = None, *, settings: Settings | None = None) -> int:
    """The commands that run jobs, for callers already inside an event loop
    (``settings`` overrides ``--timing``)."""
    args = build_parser().parse_args(argv)
    if args.command == "run":
        return await run_command(args, settings)
    if getattr(args, "component", None) is not None:
        return await component_command(args, settings)
    raise ValueError(f"{args.command!r} is not a command that runs jobs")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # libraries' log records (aiobotocore logs a failed credential refresh with its
    # traceback) are not for the person at the terminal: what matters reaches the console
    logging.getLogger().addHandler(logging.NullHandler())
    try:
        return _dispatch(args)
    except BaseException as error:  # one message, never a traceback or a group
        if isinstance(error, KeyboardInterrupt | SystemExit):
            raise
        return _internal_error(error)


def _internal_error(error: BaseException) -> int:
    leaf = error
    while isinstance(leaf, BaseExceptionGroup) and leaf.exceptions:
        leaf = leaf.exceptions[0]
    print(f"smrun: internal error: {type(leaf).__name__}: {redact_text(str(leaf))}",
          file=sys.stderr)
    if os.environ.get("SMRUN_DEBUG"):
        traceback.print_exception(error)
    else:
        print("  this is a bug in smrun; SMRUN_DEBUG=1 shows the traceback", file=sys.stderr)
    return EXIT_FAILED


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        return anyio.run(run_command, args, backend="asyncio")
    if getattr(args, "component", None) is not None:
        return anyio.run(component_command, args, backend="asyncio")
    if args.command == "validate":
        try:
            manifest = _load(args)
        except ManifestError as error:
            print(f"smrun: invalid manifest\n{redact_text(str(error))}", file=sys.stderr)
            return EXIT_BAD_INPUT
        count = len(manifest.jobs)
        print(f"{args.manifest or manifest.source}: {count} job{'s' * (count != 1)}, valid")
        return EXIT_OK
    if args.command == "iam-policy":
        return iam_policy_command(args)
    if args.command == "daemon":
        return anyio.run(daemon_command, args, backend="asyncio")
    if args.command in CLIENT_COMMANDS:
        return anyio.run(client_command, args, backend="asyncio")
    if args.command == "events":
        return anyio.run(events_command, args, backend="asyncio")
    if args.command == "emulator":
        try:
            quotas = parse_quotas(args.quota)
            serve(host=args.host, port=args.port, region=args.region,
                  events_url=args.events_endpoint_url, quotas=quotas)
        except ValueError as error:
            print(f"smrun emulator: {error}", file=sys.stderr)
            return EXIT_BAD_INPUT
        return EXIT_OK
    return EXIT_BAD_INPUT


def iam_policy_command(args: argparse.Namespace) -> int:
    try:
        names = (n.strip() for n in (args.kinds or "").split(",") if n.strip())
        kinds = resolve_kinds(names, KINDS, COMPONENTS)
        manifest = load_manifest(args.manifest, kinds=KINDS) if args.manifest else None
    except ValueError as error:
        print(f"smrun iam-policy: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ManifestError as error:
        print(f"smrun: invalid manifest\n{redact_text(str(error))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not kinds and manifest is None:
        kinds = list(KINDS.values())
    usage = usage_of(kinds, manifest, known=KINDS, role_arn=args.role_arn,
                     assume_role=args.assume_role, events_queue=args.events_queue)
    try:
        doc = (daemon_policies(usage, queue=args.queue, manifest_buckets=args.manifest_bucket)
               if args.daemon else policies(usage))
    except ValueError as error:
        print(f"smrun iam-policy: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(json.dumps(doc, indent=2))
    return EXIT_OK


async def events_command(args: argparse.Namespace) -> int:
    """``smrun events setup|teardown``: idempotent; prints what it found and changed."""
    try:
        async with Aws(_aws_config(args)) as aws:
            await aws.identify()
            if args.action == "setup":
                made = await setup_events(aws, name=args.name, kinds=KINDS)
                print(made.describe())
                print(f"use it with: smrun run ... --watch events --events-queue-url "
                      f"{made.queue_url}")
            else:
                print((await teardown_events(aws, name=args.name)).describe())
    except EnvironmentProblem as problem:
        return _environment_error("smrun events", problem)
    except ValueError as error:
        print(f"smrun events: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_OK


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"--listen {text!r}: give HOST:PORT, e.g. 127.0.0.1:8080")
    return host.strip("[]") or "127.0.0.1", int(port)


def _daemon_log(level: str, message: str) -> None:
    print(f"smrun daemon: {level}: {redact_text(message)}", file=sys.stderr, flush=True)


async def daemon_command(args: argparse.Namespace, settings: Settings | None = None,
                         daemon_settings: DaemonSettings | None = None) -> int:
    """``smrun daemon``: serve until SIGTERM or SIGINT (which detach the runs, by default)."""
    try:
        host, port = _listen(args.listen)
        token = read_token(args.token_file, os.environ)
        check_token(host, token)
        quotas = parse_quotas(args.quota) if args.quota else None
        if quotas is not None and not args.local:
            raise ValueError("--quota sets the embedded emulator's quotas: it needs --local")
        if args.max_runs < 1:
            raise ValueError("--max-runs must be at least 1")
        if not 0 < args.heartbeat < args.lease_ttl:
            raise ValueError("--heartbeat must be above 0 and below --lease-ttl")
    except (DaemonError, ValueError) as error:
        print(f"smrun daemon: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    base = daemon_settings or DaemonSettings()
    config = DaemonConfig(
        kinds=KINDS, host=host, port=port, token=token, local=args.local,
        state=args.database or args.state_dir or str(default_state_dir()),
        aws=_aws_config(args), settings=_settings(args, settings),
        daemon=DaemonSettings(**{**base.__dict__, "max_runs": args.max_runs,
                                 "on_shutdown": OnCancel(args.on_shutdown),
                                 "lease_ttl": args.lease_ttl, "heartbeat": args.heartbeat}),
        owner=args.owner, max_matrix=args.max_matrix, queue_url=args.queue,
        log=_daemon_log, local_quotas=quotas,
    )

    async def serve() -> None:
        async with anyio.create_task_group() as tg:
            url = await tg.start(run_daemon, config)
            where = "PostgreSQL" if args.database else f"state in {config.state}"
            print(f"smrun daemon: listening on {url} ({where})", file=sys.stderr, flush=True)

    try:
        caught = await until_signal(serve)
    except DaemonError as error:
        print(f"smrun daemon: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except EnvironmentProblem as problem:
        return _environment_error("smrun daemon", problem)
    except OSError as error:  # the address is taken, or can't be bound
        print(f"smrun daemon: can't listen on {args.listen}: {error.strerror or error}",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    if caught is not None:
        print("smrun daemon: stopped; running jobs were "
              + ("detached" if args.on_shutdown == "detach" else "stopped"), file=sys.stderr)
    return EXIT_OK


CLIENT_COMMANDS = ("submit", "status", "logs", "stop")


async def client_command(args: argparse.Namespace) -> int:
    """``smrun submit | status | logs | stop --daemon URL``."""
    console: Console | None = None
    try:
        async with Client(args.daemon_url, os.environ.get("SMRUN_TOKEN")) as daemon:
            if args.command == "submit":
                text = sys.stdin.read() if args.manifest == "-" else _read(args.manifest)
                run, created = await daemon.submit(text, run_id=args.run_id,
                                                   on_cancel=args.on_cancel)
                if args.json and not args.follow:
                    print(json.dumps(run, default=str))
                    return EXIT_OK
                print(f"smrun: run {run['run_id']} "
                      + ("submitted" if created else "was submitted before"), file=sys.stderr)
                if not args.follow:
                    print(run["run_id"])
                    return EXIT_OK
                console = Console(fmt="json" if args.json else None)
                return await follow_run(daemon, run["run_id"], console)
            if args.command == "status":
                if args.run_id is None:
                    runs = await daemon.runs()
                    print(json.dumps(runs, default=str) if args.json else runs_table(runs))
                    return EXIT_OK
                if args.follow:
                    console = Console(fmt="json" if args.json else None)
                    return await follow_run(daemon, args.run_id, console)
                run = await daemon.run(args.run_id)
                print(json.dumps(run, default=str) if args.json else run_table(run))
                return EXIT_OK
            if args.command == "logs":
                lines = (daemon.logs(args.run_id, args.job, follow=args.follow) if args.job
                         else daemon.events(args.run_id, logs=True, follow=args.follow))
                async for event in lines:
                    if event.type == "log":
                        print(json.dumps(event.record) if args.json else log_text(event.record),
                              flush=True)
                return EXIT_OK
            await daemon.stop(args.run_id, args.job)
            print(f"smrun: asked {args.run_id}" + (f" {args.job}" if args.job else "")
                  + " to stop", file=sys.stderr)
            return EXIT_OK
    except ClientError as error:
        if console is not None:
            console.close()
        fix = {0: "start it (`smrun daemon`), or pass --daemon URL",
               401: "set SMRUN_TOKEN to the daemon's token"}.get(error.status)
        print(f"smrun {args.command}: {error}" + (f"\n  fix: {fix}" if fix else ""),
              file=sys.stderr)
        return EXIT_BAD_INPUT if error.status in (0, 400, 401, 404, 409, 413, 422) \
            else EXIT_FAILED
    except OSError as error:
        print(f"smrun {args.command}: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
