"""The ``smrun`` command line. Thin: every command is a library call."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from typing import Any

import anyio

from runner.aws import AwsConfig
from runner.console import Console
from runner.settings import OnCancel, Settings

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}


def _common_aws(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--region", help="AWS region (default: the standard AWS configuration)")
    parser.add_argument("--endpoint-url", help="SageMaker endpoint URL")
    parser.add_argument("--logs-endpoint-url", help="CloudWatch Logs endpoint URL")
    parser.add_argument("--assume-role", help="role ARN to assume for every call")
    parser.add_argument("--profile", help="AWS profile name")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smrun", description="SageMaker jobs on one asyncio engine."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run every job of a manifest")
    run.add_argument("manifest", help="manifest YAML file ('-' for standard input)")
    run.add_argument("--local", action="store_true",
                     help="start the embedded SageMaker emulator and run against it")
    run.add_argument("--run-id", help="run id: the same id reattaches to the same jobs")
    run.add_argument("--log-format", choices=["console", "json"],
                     help="default: console on a terminal, json otherwise")
    run.add_argument("--output-json", help="write every job's result and outputs here")
    run.add_argument("--on-cancel", choices=[o.value for o in OnCancel], default="stop")
    run.add_argument("--stop-grace", type=float, help="seconds to wait for Stopped on cancel")
    run.add_argument("--timing", choices=["default", "fast"],
                     help="polling cadence; fast (sub-second, for an emulator) is the "
                     "default with --local")
    run.add_argument("--state-dir",
                     help="where the journal keeps log positions and results across restarts "
                     "(default: $SMRUN_STATE_DIR or ~/.local/state/smrun)")
    _common_aws(run)

    check = sub.add_parser("validate", help="validate a manifest without creating anything")
    check.add_argument("manifest")

    emu = sub.add_parser("emulator", help="run the local SageMaker + CloudWatch Logs emulator")
    emu.add_argument("--host", default="127.0.0.1")
    emu.add_argument("--port", type=int, default=4566)
    emu.add_argument("--region", default="us-east-1")
    return parser


def _aws_config(args: argparse.Namespace, region: str | None = None) -> AwsConfig:
    return AwsConfig(
        region=args.region or region,
        endpoint_url=args.endpoint_url,
        logs_endpoint_url=args.logs_endpoint_url,
        assume_role=args.assume_role,
        profile=args.profile,
    )


def _load(path: str) -> Any:
    from runner.manifest import load_manifest

    if path == "-":
        return load_manifest(sys.stdin.read(), source="<stdin>")
    return load_manifest(path)


async def run_command(args: argparse.Namespace) -> int:
    from runner.engine import Runner
    from runner.manifest import ManifestError
    from runner.outputs import summary, write_json

    try:
        manifest = _load(args.manifest)
    except ManifestError as error:
        print(f"smrun: invalid manifest\n{error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    console = Console(fmt=args.log_format)
    fast = args.timing == "fast" or (args.local and args.timing != "default")
    settings = Settings.fast() if fast else Settings()
    overrides: dict[str, Any] = {"on_cancel": OnCancel(args.on_cancel)}
    if args.stop_grace is not None:
        overrides["stop_grace"] = args.stop_grace
    settings = Settings(**{**settings.__dict__, **overrides})
    caught: list[int] = []

    from runner.journal import Journal, default_state_dir

    journal = Journal.in_dir(args.state_dir or default_state_dir())
    async with Runner(
        _aws_config(args, manifest.region),
        settings=settings,
        run_id=args.run_id,
        local=args.local,
        sinks=[console],
        journal=journal,
    ) as runner:
        async with anyio.create_task_group() as tg:

            async def watch_signals() -> None:
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for signum in signals:
                        caught.append(SIGNAL_EXIT.get(signal.Signals(signum), 1))
                        tg.cancel_scope.cancel()
                        return

            async def run_all() -> None:
                await runner.run_manifest(manifest)
                tg.cancel_scope.cancel()

            tg.start_soon(watch_signals)
            tg.start_soon(run_all)
        results = {k: runner.results[k] for k in manifest.order() if k in runner.results}
    journal.close()
    console.summary(results)
    if args.output_json:
        write_json(args.output_json, summary(results, runner.run_id))
    if caught:
        return caught[0]
    return EXIT_OK if results and all(r.ok for r in results.values()) else EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        return anyio.run(run_command, args, backend="asyncio")
    if args.command == "validate":
        from runner.manifest import ManifestError

        try:
            manifest = _load(args.manifest)
        except ManifestError as error:
            print(f"smrun: invalid manifest\n{error}", file=sys.stderr)
            return EXIT_BAD_INPUT
        print(f"{args.manifest}: {len(manifest.jobs)} jobs, valid")
        return EXIT_OK
    if args.command == "emulator":
        from runner.emulator import serve

        serve(host=args.host, port=args.port, region=args.region)
        return EXIT_OK
    return EXIT_BAD_INPUT


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
