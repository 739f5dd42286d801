"""`python -m app watch FILE`: run a flow on start and again on every save of its files.

The files are the flow, its task modules (`--tasks-file`, `--tasks`, or `flow.py` beside
FILE), the inputs file (`--test-inputs`) and the `.env` beside FILE. Their directories are
watched with `watchfiles` (file-system events, debounced), not the files themselves, so an
editor that saves by writing a new file and renaming it over the old one is followed too.

Each run starts from scratch: the flow's text is read again, the task modules are imported
afresh, the inputs are read again. A broken save is reported (problems with line and column,
or why a module would not import) and watching goes on; the next good save runs again. After
each run come the outputs that changed since the last run that had outputs.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import io
import logging
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from threading import Event
from typing import Any

import watchfiles
from rich.console import Console
from rich.text import Text

from app.cli import EXIT_OK, UsageError, _inputs, _print_problems, _read, _registry
from app.cli.output_diff import output_changes, render_changes
from app.cli.progress import format_seconds, run_with_progress
from app.domain.runs import RunStatus
from app.engine.environment import default_environment
from app.engine.executor import FlowExecutor
from app.errors import (
    DefinitionError,
    FlowFailedError,
    FlowManagerError,
    InputValidationError,
)
from app.tasks.loading import names_a_file

# Changes closer together than STEP_MS are one save (an editor writes, renames, touches);
# no run waits longer than DEBOUNCE_MS after the first of them.
STEP_MS = 100
DEBOUNCE_MS = 1_000
# How often the files' sizes and times are compared even without an event: a save made while
# the watcher was being set up, or in a directory whose events are lost, still runs the flow.
RECHECK_MS = 1_000

Fingerprint = dict[Path, tuple[int, int] | None]


def add_command(commands: Any) -> None:
    watch = commands.add_parser(
        "watch", help="run a flow, then again on every save of its files (Ctrl+C stops)"
    )
    watch.add_argument("file", type=Path, help="the flow definition (YAML or JSON)")
    watch.add_argument(
        "--tasks-file",
        "--tasks",
        dest="tasks",
        action="append",
        default=[],
        metavar="PY",
        help="task module (.py path or dotted name, repeat); default: flow.py beside FILE",
    )
    inputs = watch.add_mutually_exclusive_group()
    inputs.add_argument(
        "--test-inputs", type=Path, metavar="JSON_FILE", help="inputs as a JSON file, watched"
    )
    inputs.add_argument("--inputs", help="inputs as a JSON object, or @FILE (watched)")
    watch.set_defaults(command=command)


def command(arguments: argparse.Namespace) -> int:
    # watchfiles logs a warning when Ctrl+C stops it: that is how a user quits, no news.
    logging.getLogger("watchfiles").setLevel(logging.ERROR)
    session = WatchSession(arguments, Console(highlight=False))
    # Ctrl+C during a run; while waiting for a save, watchfiles takes it and returns.
    with contextlib.suppress(KeyboardInterrupt):
        session.watch()
    return EXIT_OK


@dataclass
class WatchSession:
    arguments: argparse.Namespace
    console: Console
    runs: int = 0
    last_outputs: dict[str, Any] | None = None

    @property
    def inputs_text(self) -> str:
        if self.arguments.test_inputs is not None:
            return f"@{self.arguments.test_inputs}"
        return str(self.arguments.inputs or "{}")

    def watched_files(self) -> list[Path]:
        """What a save of reruns the flow, resolved (events name files by their full path)."""
        file: Path = self.arguments.file
        files = [file, file.parent / ".env"]
        if not self.arguments.tasks:
            files.append(file.parent / "flow.py")
        files.extend(_module_file(name) for name in self.arguments.tasks)
        if self.inputs_text.startswith("@"):
            files.append(Path(self.inputs_text[1:]))
        return list(dict.fromkeys(path.expanduser().resolve() for path in files))

    def watch(self, stop: Event | None = None) -> None:
        """Run now and on every save until Ctrl+C (or `stop` is set)."""
        files = self.watched_files()
        directories = sorted({path.parent for path in files})
        shown = ", ".join(path.name for path in files if path.exists())
        seen = fingerprint(files)
        self.run_once("start")
        self.console.print(Text(f"watching {shown} (Ctrl+C stops)", style="dim"))
        changes_seen = watchfiles.watch(
            *directories,
            watch_filter=lambda _change, path: Path(path).resolve() in files,
            debounce=DEBOUNCE_MS,
            step=STEP_MS,
            rust_timeout=RECHECK_MS,
            yield_on_timeout=True,
            stop_event=stop,
            raise_interrupt=False,
            recursive=False,
        )
        for changes in changes_seen:
            now = fingerprint(files)
            changed = [path for path in files if now[path] != seen[path]]
            named = {Path(path).resolve() for _, path in changes}
            if not changes and not changed:
                continue
            seen = now
            saved = [path.name for path in files if path in named or path in changed]
            self.run_once("saved " + ", ".join(saved))

    def run_once(self, reason: str) -> None:
        """Run the flow as its files now are, and show how it went; never raises for what
        the files say (the next save may fix it)."""
        self.runs += 1
        clock = datetime.now().strftime("%H:%M:%S")
        self.console.rule(f"run {self.runs} · {clock} · {reason}", style="dim")
        try:
            self._run()
        except UsageError as error:  # unreadable files, bad inputs JSON, a module's import
            self.console.print(Text(f"error: {error}", style="red"), soft_wrap=True)
        except (DefinitionError, InputValidationError) as error:
            buffer = io.StringIO()
            _print_problems(self.arguments.file, error, buffer)
            # Unwrapped: `FILE:LINE:COLUMN: ...` lines stay whole for editors and grep.
            self.console.print(Text(buffer.getvalue().rstrip(), style="red"), soft_wrap=True)
        except FlowManagerError as error:  # anything else the engine refuses: said, not fatal
            self.console.print(Text(f"error: {error.message}", style="red"), soft_wrap=True)

    def _run(self) -> None:
        file: Path = self.arguments.file
        source = _read(file)
        _forget_modules(self.arguments.tasks)
        executor = FlowExecutor(_registry(self.arguments), env=default_environment(file.parent))
        definition = executor.load(source)
        inputs = _inputs(self.inputs_text)
        result = run_with_progress(executor, definition, inputs, self.console)
        took = format_seconds(result.duration_ms / 1000)
        if result.status is not RunStatus.COMPLETED:
            assert result.error is not None
            failure = FlowFailedError(result.run_id, result.error)
            failed = Text(f"{failure.message} ({took})", style="bold red")
            self.console.print(failed, soft_wrap=True)
            return
        outputs = result.outputs or {}
        self.console.print(Text(f"completed in {took}", style="green"))
        self._show_outputs(outputs)
        self.last_outputs = outputs

    def _show_outputs(self, outputs: Mapping[str, Any]) -> None:
        if self.last_outputs is None:
            self.console.print("outputs:")
            self.console.print_json(data=outputs, default=str)
            return
        changes = output_changes(self.last_outputs, outputs)
        if not changes:
            self.console.print(Text("outputs unchanged", style="dim"))
            return
        self.console.print("outputs changed:")
        self.console.print(render_changes(changes))


def fingerprint(files: Iterable[Path]) -> Fingerprint:
    """Each file's modification time and size (None: absent), to tell a save without an
    event."""
    prints: Fingerprint = {}
    for path in files:
        try:
            stat = path.stat()
        except OSError:
            prints[path] = None
        else:
            prints[path] = (stat.st_mtime_ns, stat.st_size)
    return prints


def _module_file(name: str) -> Path:
    """A task module's file: the path given, or where a dotted module's source is."""
    if names_a_file(name):
        return Path(name)
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):  # a parent package that does not import: no file yet
        spec = None
    if spec is None or spec.origin is None:
        return Path(name.replace(".", "/") + ".py")
    return Path(spec.origin)


def _forget_modules(names: Iterable[str]) -> None:
    """Dotted task modules are imported anew (a file given by path always is): drop them and
    their submodules from the import cache. Never Flow Manager's own: a second copy of
    `TaskRegistry` would not be the class the engine checks for."""
    dotted = [name for name in names if not names_a_file(name) and name.split(".")[0] != "app"]
    for loaded in list(sys.modules):
        if any(loaded == name or loaded.startswith(name + ".") for name in dotted):
            del sys.modules[loaded]
    if dotted:
        importlib.invalidate_caches()
