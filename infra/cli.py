"""`amlpipe`: validate, draw, hash (and run) pipeline definitions locally, without Azure.

Every subcommand reuses the spec core; nothing here re-implements loading or validation.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TextIO

from infra.runner.commands import register as register_runner_commands

if TYPE_CHECKING:
    from infra.definitions.loader import DefinitionSet, LoadedPipeline
    from infra.definitions.validate import KnownNames
    from infra.settings import SettingProblem, Settings, SettingsError
    from infra.stack_files import StackFileError

# Start-up matters here (editors and hooks run `amlpipe validate` on every save): each subcommand
# imports what it needs when it runs, so `validate` never loads the hashing code, rich tables,
# the settings model or anything of the runner, and `--help` loads none of the spec core.

DEFAULT_DEFS = Path("pipeline_defs")
EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


_MARKUP = re.compile(r"\[/?(?:red|green|bold)\]")


def _say(markup: str, stream: TextIO | None = None) -> None:
    """Print a line with rich markup: styled on a terminal, plain (and without loading rich)
    when piped, as rich itself would print it there."""
    stream = stream or sys.stdout
    if stream.isatty():
        from rich.console import Console

        Console(file=stream).print(markup)
    else:
        print(_MARKUP.sub("", markup), file=stream)


def _load(
    paths: Sequence[Path], known: KnownNames | None = None, root: Path | None = None
) -> DefinitionSet:
    from infra.definitions.loader import load_definitions

    return load_definitions(list(paths) or [DEFAULT_DEFS], root, known=known)


def stack_settings(stack: str, root: Path) -> Settings:
    """The settings of `stack` (`Pulumi.yaml` defaults + its stack file), parsed as the program
    parses them, with the project's other stacks (a stack whose resource names collide with
    another's is refused). Raises :class:`~infra.settings.SettingsError` with the program's
    located problems, :class:`~infra.stack_files.StackFileError` for a file that is not YAML, or
    ValueError naming the known stacks when there is no such stack file."""
    from infra.settings import parse_settings
    from infra.stack_files import project_name, settings_raw, stack_config, stack_names

    stack_file = root / f"Pulumi.{stack}.yaml"
    stacks = stack_names(root)
    if not os.path.lexists(stack_file):
        # Anything else of that name (a folder, a dangling link) is reported by the reader.
        raise ValueError(
            f"no stack file {stack_file.name} in {root} (stacks: {', '.join(stacks) or 'none'})"
        )
    raw = settings_raw(root, stack_config(root, stack_file))
    return parse_settings(raw, project=project_name(root), stack=stack, other_stacks=stacks)


def known_names(settings: Settings) -> KnownNames:
    """Cluster names and image keys a stack provides."""
    from infra.definitions.validate import KnownNames

    return KnownNames(computes=frozenset(settings.cluster_names), images=frozenset(settings.images))


@dataclass(frozen=True)
class _Stack:
    """What `validate --stack` checks against: the stack's settings and where they come from."""

    name: str
    root: Path
    settings: Settings
    folder: Path
    """The stack's `pipelineDefs` folder: what the program loads."""

    @property
    def file(self) -> Path:
        """`Pulumi.<name>.yaml`."""
        return self.root / f"Pulumi.{self.name}.yaml"


def _same_folders(paths: Sequence[Path], folder: Path) -> bool:
    try:
        return {p.resolve() for p in paths} == {folder.resolve()}
    except (OSError, RuntimeError, ValueError):
        return False


def _setting_json(root: Path, stack_file: Path, problem: SettingProblem) -> dict[str, object]:
    """A settings problem in the shape of :meth:`SpecError.to_json`. One about a config key: the
    file that sets it (the stack file, else Pulumi.yaml's default), its line, the key as users
    write it (``azureml-pipelines:clusters[0].maxNodes``), the message. One about the stack as a
    whole (its name): the stack file, path ``<document>`` like a whole-file definition problem."""
    from infra.definitions.errors import format_key_path
    from infra.definitions.loader import display_path
    from infra.settings import ConfigProblem
    from infra.stack_files import config_source

    if not isinstance(problem, ConfigProblem):
        return {
            "file": display_path(stack_file),
            "line": None,
            "path": format_key_path(()),
            "message": problem,
        }
    file, line = config_source(root, stack_file, problem.path)
    return {
        "file": display_path(file),
        "line": line,
        "path": problem.key,
        "message": problem.message,
    }


def _stack_error_json(root: Path, stack: str, exc: SettingsError | StackFileError) -> list[object]:
    """The errors of a stack whose settings the program refuses, as `validate --json` lists
    them."""
    from infra.definitions.errors import format_key_path
    from infra.definitions.loader import display_path
    from infra.settings import SettingsError

    stack_file = root / f"Pulumi.{stack}.yaml"
    if isinstance(exc, SettingsError):
        return [_setting_json(root, stack_file, p) for p in exc.located]
    where = {"file": display_path(exc.file), "line": exc.line, "path": format_key_path(())}
    return [{**where, "message": exc.message}]


def _print_json(pipelines: list[str], errors: list[object]) -> int:
    print(json.dumps({"valid": not errors, "pipelines": pipelines, "errors": errors}, indent=2))
    return EXIT_INVALID if errors else EXIT_OK


def _resolve_pipeline(defs_dir: Path, name: str) -> LoadedPipeline | None:
    """The valid pipeline `name`, or None after printing why not."""
    definitions = _load([defs_dir])
    if definitions.errors:
        _say(f"[red]{len(definitions.errors)} problem(s) in {defs_dir}:[/red]", sys.stderr)
        for error in definitions.errors:
            print(f"  {error}", file=sys.stderr)
    try:
        return definitions.by_name(name)
    except KeyError as exc:
        _say(f"[red]error:[/red] {exc.args[0]}", sys.stderr)
        return None


def cmd_validate(args: argparse.Namespace) -> int:
    """Validate definitions; print every problem; exit 1 when there is any.

    With `--stack`, also what the program refuses for that stack before registering a resource:
    its settings, the definitions' clusters and images, then (definitions valid) the pre-flight
    checks of :mod:`infra.preflight`. Without paths it checks the stack's `pipelineDefs` folder,
    the one `pulumi preview` on that stack loads."""
    stack: _Stack | None = None
    if args.stack:
        from infra.paths import ProjectRootError, project_path, project_root
        from infra.settings import SettingsError
        from infra.stack_files import StackFileError

        try:
            # The project root as the program finds it: its stack files are the other stacks.
            root = project_root()
        except ProjectRootError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        try:
            settings = stack_settings(args.stack, root)
        except (SettingsError, StackFileError) as exc:
            # An invalid stack file (its values, or YAML that cannot be read), reported and
            # exited on as the program does (a RunError).
            if args.json:
                return _print_json([], _stack_error_json(root, args.stack, exc))
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_INVALID
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        stack = _Stack(args.stack, root, settings, project_path(settings.pipeline_defs))
    if stack is not None and not args.paths:
        # The program's folder and repository root, so the same files load the same way.
        definitions = _load([stack.folder], known_names(stack.settings), stack.root)
    else:
        definitions = _load(args.paths, known_names(stack.settings) if stack else None)
    checks = None
    if stack is not None and not definitions.errors:
        from infra.preflight import preflight

        # Given paths other than the stack's folder are some of its definitions at most.
        complete = not args.paths or _same_folders(args.paths, stack.folder)
        checks = preflight(stack.settings, definitions.pipelines, stack.root, complete)
    if args.json:
        errors: list[object] = [e.to_json() for e in definitions.errors]
        if checks is not None and stack is not None:
            errors += [_setting_json(stack.root, stack.file, p) for p in checks.config]
            errors += [e.to_json() for e in checks.definitions]
        return _print_json([p.spec.name for p in definitions.pipelines], errors)
    problems = list(definitions.errors)
    if checks:
        from infra.settings import SettingsError

        for failure in checks.failures():
            if isinstance(failure, SettingsError):
                # Word for word what the program ends with (its RunError).
                print(f"error: {failure}", file=sys.stderr)
            else:
                problems += failure.errors
    for error in problems:
        # Plain lines (no wrapping, no markup) so editors and grep can jump to file:line.
        print(error, file=sys.stderr)
    if problems:
        count = len(problems)
        _say(f"[red]{count} problem{'s' if count != 1 else ''} found[/red]", sys.stderr)
    if problems or checks:
        return EXIT_INVALID
    from infra.definitions.loader import display_path

    for pipeline in definitions.pipelines:
        steps = len(pipeline.spec.steps)
        schedules = len(pipeline.spec.schedules)
        _say(
            f"[green]ok[/green] {pipeline.spec.name} ({display_path(pipeline.file)}): "
            f"{steps} step{'s' if steps != 1 else ''}, "
            f"{schedules} schedule{'s' if schedules != 1 else ''}"
        )
    return EXIT_OK


def cmd_graph(args: argparse.Namespace) -> int:
    """Print a pipeline's DAG as Mermaid (default) or Graphviz DOT."""
    from infra.definitions.graph import to_dot, to_mermaid

    pipeline = _resolve_pipeline(args.defs, args.name)
    if pipeline is None:
        return EXIT_INVALID
    sys.stdout.write(to_dot(pipeline.spec) if args.format == "dot" else to_mermaid(pipeline.spec))
    return EXIT_OK


def default_image_refs(repo_root: Path) -> dict[str, str]:
    """Image references used locally: the `training` image built from docker/ by content tag."""
    from infra.definitions.hashing import build_context_tag

    context = repo_root / "docker"
    if not context.is_dir():
        return {}
    return {"training": f"azureml-pipelines/training:{build_context_tag(context)}"}


def cmd_hash(args: argparse.Namespace) -> int:
    """Print the content hash of a pipeline and of each of its steps."""
    from infra.definitions.hashing import pipeline_digest
    from infra.definitions.loader import find_repo_root

    pipeline = _resolve_pipeline(args.defs, args.name)
    if pipeline is None:
        return EXIT_INVALID
    refs = default_image_refs(find_repo_root(pipeline.folder))
    for item in args.image:
        key, _, ref = item.partition("=")
        if not ref:
            _say(f"[red]error:[/red] --image expects KEY=REF, got {item!r}", sys.stderr)
            return EXIT_USAGE
        refs[key] = ref
    digest = pipeline_digest(pipeline, refs)
    if args.json:
        payload = {
            "pipeline": pipeline.spec.name,
            "hash": digest.digest,
            "images": digest.images,
            "steps": {
                name: {"hash": s.digest, "code": s.code.digest, "files": s.code.files}
                for name, s in digest.steps.items()
            },
        }
        print(json.dumps(payload, indent=2))
        return EXIT_OK
    rows = [
        [name, step.digest[:16], step.code.digest[:16], str(step.code.files), str(step.code.size)]
        for name, step in digest.steps.items()
    ]
    images = [f"image {key}: {ref}" for key, ref in digest.images.items()]
    if not sys.stdout.isatty():
        # Piped: the same lines and table rich prints there, without loading rich (a third of
        # this command's start-up), and the digest never split at 80 columns.
        print(f"pipeline {pipeline.spec.name}: {digest.digest}")
        from infra.plaintext import plain_table

        print("\n".join(plain_table(HASH_COLUMNS, rows)))
        print("\n".join(images))
        return EXIT_OK
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    out = Console()
    out.print(f"pipeline {pipeline.spec.name}: [bold]{digest.digest}[/bold]")
    table = Table(*HASH_COLUMNS)
    for row in rows:
        table.add_row(*row)
    out.print(table)
    for line in images:
        out.print(escape(line))
    return EXIT_OK


HASH_COLUMNS = ("step", "hash", "code hash", "files", "bytes")


def cmd_schema(args: argparse.Namespace) -> int:
    """Write (or print) the JSON Schema of pipeline.yaml."""
    from infra.definitions.schema import render_schema

    text = render_schema()
    if args.output == "-":
        sys.stdout.write(text)
    else:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            print(f"error: cannot write {args.output!r}: {reason}", file=sys.stderr)
            return EXIT_USAGE
        _say(f"wrote {args.output}", sys.stderr)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The `amlpipe` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="amlpipe", description="Validate, draw, hash and run Azure ML pipeline definitions."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    validate = sub.add_parser("validate", help="validate definitions; every problem, located")
    validate.add_argument(
        "paths",
        nargs="*",
        type=Path,
        help="files or folders (default: pipeline_defs; with --stack, that stack's pipelineDefs)",
    )
    validate.add_argument("--json", action="store_true", help="machine-readable output")
    validate.add_argument(
        "--stack",
        metavar="NAME",
        help="also check what the program refuses for this stack before any resource: its "
        "settings (Pulumi.yaml + Pulumi.<NAME>.yaml), cluster and image names, the pipelines "
        "dataFactory lists, what Azure ML v2 cannot express (api or apiPrevious v2); "
        "definitions come from its pipelineDefs folder unless paths are given",
    )
    validate.set_defaults(func=cmd_validate)

    graph = sub.add_parser("graph", help="draw a pipeline's DAG")
    graph.add_argument("name")
    graph.add_argument("--format", choices=["mermaid", "dot"], default="mermaid")
    graph.add_argument(
        "--dot", dest="format", action="store_const", const="dot", help="Graphviz DOT"
    )
    graph.add_argument("--defs", type=Path, default=DEFAULT_DEFS, help="definitions folder")
    graph.set_defaults(func=cmd_graph)

    hash_ = sub.add_parser("hash", help="content hash of a pipeline and its steps")
    hash_.add_argument("name")
    hash_.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="KEY=REF",
        help="image reference for an image key (default: docker/ content tag)",
    )
    hash_.add_argument("--json", action="store_true")
    hash_.add_argument("--defs", type=Path, default=DEFAULT_DEFS)
    hash_.set_defaults(func=cmd_hash)

    schema = sub.add_parser("schema", help="write the JSON Schema of pipeline.yaml")
    schema.add_argument(
        "--output",
        default=str(DEFAULT_DEFS / "pipeline.schema.json"),
        help="file to write, or - for stdout",
    )
    schema.set_defaults(func=cmd_schema)
    register_runner_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `amlpipe` console script."""
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


def entry() -> NoReturn:
    """The `amlpipe` console script (and `python -m infra.cli`): :func:`main`, then the process
    ends without the interpreter's teardown when that teardown has nothing left to do.

    Finalization (clearing every module, collecting pydantic's schema objects, the docker SDK's
    sessions) took 0.1-0.2 s after `amlpipe run` had written its summary (bench/runner_timeline.py),
    paid by every command. Each command closes what it opens itself: files and the summary are
    written and closed, steps and containers ended and removed, staged copies deleted. So once
    stdout and stderr are flushed the process can end at once (`os._exit`, the exit code kept).
    The interpreter's own exit is kept whenever something could still need it: another
    non-daemon thread alive, a flush that fails (the normal exit reports it), or an exception
    (SystemExit from argparse, KeyboardInterrupt, a bug's traceback).
    """
    code = main()
    others = [
        thread
        for thread in threading.enumerate()
        if thread is not threading.main_thread() and not thread.daemon and thread.is_alive()
    ]
    if others:
        raise SystemExit(code)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        raise SystemExit(code) from None
    os._exit(code)


if __name__ == "__main__":
    entry()
