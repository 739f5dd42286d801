"""`scaffold FILE -o DIR [--force]`: write a project for a flow (the tutorial's Step 7, also
`python -m flowlang.scaffolder scaffold flow.yaml -o .`). What the files hold is
`app.cli.scaffold`'s; this module reads the flow and writes them, never over an existing file
unless `--force` says so."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from app.cli.scaffold import EXECUTABLE, project_files
from app.engine.executor import FlowExecutor
from app.errors import DefinitionError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_command(commands: Any) -> None:
    """`scaffold` under the subcommands `commands` of `python -m app`."""
    from app.cli import _add_tasks_option  # noqa: PLC0415 - app.cli imports this module

    scaffold = commands.add_parser(
        "scaffold", help="write api.py, tests, tools/start_server.sh and README.md for a flow"
    )
    scaffold.add_argument("file", type=Path, help="the flow definition (YAML or JSON)")
    scaffold.add_argument(
        "-o", "--output", type=Path, default=Path("."), help="the project directory (default: .)"
    )
    scaffold.add_argument("--force", action="store_true", help="overwrite existing files")
    _add_tasks_option(scaffold)
    scaffold.set_defaults(command=scaffold_project)


def scaffold_project(arguments: argparse.Namespace) -> int:
    from app.cli import (  # noqa: PLC0415 - as above
        _print_problems,
        _read,
        _registry,
        _task_module_names,
    )

    source = _read(arguments.file)
    tasks = _registry(arguments)
    try:
        definition = FlowExecutor(tasks).load(source)
    except DefinitionError as error:
        _print_problems(arguments.file, error, sys.stderr)
        return EXIT_FAILED
    directory: Path = arguments.output
    files = project_files(
        definition,
        tasks,
        flow_file=arguments.file,
        task_modules=_task_module_names(arguments),
        directory=directory,
    )
    existing = [name for name in files if (directory / name).exists()]
    if existing and not arguments.force:
        print(
            f"error: {', '.join(existing)} already exist in {directory}; "
            "nothing was written (--force overwrites them)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        if name in EXECUTABLE:
            path.chmod(0o755)
        print(f"wrote {path}")
    return EXIT_OK
