"""`amlpipe run` and `amlpipe build`: registered on the CLI's subparsers by :func:`register`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from infra.runner.errors import RunnerError

if TYPE_CHECKING:
    from rich.console import Console

# Registering the subcommands costs nothing: every other CLI command pays for this module's
# imports at start-up, so rich, the spec core and the runner load inside the commands.

EXIT_USAGE = 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `run` and `build` subcommands."""
    run = subparsers.add_parser(
        "run",
        help="run a pipeline locally, in the training image (Docker) or with local interpreters",
    )
    run.add_argument("name", help="pipeline name")
    run.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="pipeline parameter value (typed as declared); repeatable",
    )
    run.add_argument("--executor", choices=["docker", "process"], default="docker")
    run.add_argument("--image", help="image reference (default: the image built from docker/)")
    run.add_argument("--jobs", type=_positive, default=2, help="steps run in parallel (default 2)")
    run.add_argument("--run-dir", type=Path, help="run folder (default runs/<pipeline>/<run id>)")
    run.add_argument(
        "--fail-fast", action="store_true", help="cancel running steps as soon as one fails"
    )
    run.add_argument(
        "--stop-grace",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="on Ctrl-C/SIGTERM: seconds between SIGTERM and SIGKILL to running steps (default 10;"
        " a second Ctrl-C kills at once)",
    )
    run.add_argument("--defs", type=Path, default=Path("pipeline_defs"), help="definitions folder")
    run.set_defaults(func=cmd_run)

    build = subparsers.add_parser(
        "build",
        help="build the training image from docker/ (tag = content hash; skipped if present)",
    )
    build.add_argument(
        "--build-arg", action="append", default=[], metavar="NAME=VALUE", help="repeatable"
    )
    build.add_argument("--context", type=Path, help="build context (default: <repo>/docker)")
    build.add_argument("--force", action="store_true", help="build even if the tag exists")
    build.set_defaults(func=cmd_build)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"must be between 0 and 3600, got {text}")
    return value


def _error(err: Console, exc: RunnerError) -> int:
    from rich.markup import escape

    err.print(f"[bold red]error:[/] {escape(exc.message)}")
    if exc.hint:
        err.print(f"[yellow]what to do:[/] {escape(exc.hint)}")
    return EXIT_USAGE


def cmd_run(args: argparse.Namespace) -> int:
    """Run a pipeline locally; exit 0 on success, 1 when a step failed, 130 when interrupted."""
    from infra.definitions.loader import load_definitions
    from infra.plaintext import escape, make_console
    from infra.runner.interrupts import StopSignals
    from infra.runner.run import EXIT_CODES, RunOptions, run_pipeline

    # On a pipe, lines are printed as rich prints them there, without loading rich (start-up);
    # stderr (problems, errors) keeps rich's console: it is not on the path of a run that works.
    out = make_console()
    definitions = load_definitions([args.defs])
    try:
        loaded = definitions.by_name(args.name)
    except KeyError as exc:
        _stderr().print(f"[bold red]error:[/] {escape(str(exc.args[0]))}")
        for problem in definitions.errors:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_USAGE
    if definitions.errors:
        # Problems in other files do not stop this run, but are never hidden (README).
        _stderr().print(f"[yellow]warning:[/] {len(definitions.errors)} problem(s) in {args.defs}:")
        for problem in definitions.errors:
            print(f"  {problem}", file=sys.stderr)
    options = RunOptions(
        params=args.param,
        executor=args.executor,
        image=args.image,
        jobs=args.jobs,
        run_dir=args.run_dir,
        fail_fast=args.fail_fast,
        stop_grace=args.stop_grace,
    )
    # SIGINT, SIGTERM and SIGHUP all stop the run the same way: steps (and containers) of the run
    # must not outlive it, and summary.json says it was cancelled.
    signals = StopSignals()
    signals.install()
    try:
        summary = run_pipeline(loaded, options, out, signals)
    except RunnerError as exc:
        return _error(_stderr(), exc)
    except KeyboardInterrupt:
        # Interrupted before any step started (steps are handled by the scheduler).
        _stderr().print("interrupted")
        return 130
    finally:
        signals.restore()
    return EXIT_CODES[summary.status]


def _stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True)


def _build_args(items: list[str]) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise RunnerError(f"--build-arg {item!r}: expected NAME=VALUE")
        result[name] = value
    return result


def cmd_build(args: argparse.Namespace) -> int:
    """Build docker/ as `azureml-pipelines/training:<content tag>`; print the reference."""
    from rich.console import Console
    from rich.markup import escape

    from infra.definitions.loader import find_repo_root
    from infra.runner.docker_engine import build_image, connect

    err = Console(stderr=True)
    context = args.context or find_repo_root(Path.cwd()) / "docker"
    try:
        if not (context / "Dockerfile").is_file():
            raise RunnerError(
                f"no Dockerfile in {context}", "run from the repository or pass --context"
            )
        client = connect()
        result = build_image(
            client,
            context,
            _build_args(args.build_arg),
            lambda line: err.print(escape(line), highlight=False),
            force=args.force,
        )
    except RunnerError as exc:
        return _error(err, exc)
    err.print(f"{'built' if result.built else 'up to date, not rebuilt:'} {result.tag}")
    print(result.tag)
    return 0
