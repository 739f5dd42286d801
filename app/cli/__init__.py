"""`python -m app`: run, validate and inspect flows from the command line.

    python -m app run FILE [--inputs JSON] [--tasks MODULE]... [--json]
    python -m app watch FILE [--tasks-file PY]... [--test-inputs JSON_FILE | --inputs JSON]
    python -m app validate FILE [--tasks MODULE]...
    python -m app test FIXTURE... [--tasks MODULE]...
    python -m app connections | connection list | connection example PLUGIN
    python -m app scaffold FILE [-o DIR] [--force] [--tasks MODULE]...
    python -m app serve [--host HOST] [--port PORT]
    python -m app worker [--concurrency N]
    python -m app db upgrade [--revision REV]
    python -m app users create NAME [--admin] [--email E] [--password-stdin] [--no-key]
    python -m app users list | users set-password NAME
    python -m app keys create USER [--scope S]... [--name N] [--expires-in-days D]
    python -m app keys list [USER] | keys revoke ID

Exit codes: 0 success, 1 the flow is invalid or its run failed, 2 usage errors (bad arguments,
unreadable files, unloadable task modules).

Next to FILE, the tutorial's layout is honoured: a `flow.py` there is the default task module,
and a `.env` there provides `${env...}` values (the real environment wins).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from app.cli import connection, scaffold_command, testing
from app.connections.urls import redact_url
from app.domain.access import Scope
from app.engine.environment import default_environment
from app.engine.executor import FlowExecutor
from app.errors import (
    DefinitionError,
    FlowFailedError,
    FlowManagerError,
    InputValidationError,
    TaskModuleError,
    format_loc,
)
from app.services.configuration import definition_limits
from app.settings import Settings, get_settings
from app.tasks.loading import load_task_modules
from app.tasks.registry import TaskRegistry

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """The command line asks for something that cannot be done."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    arguments = parser.parse_args(argv)
    try:
        code: int = arguments.command(arguments)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except FlowManagerError as error:  # e.g. a taken user name, an unknown key
        print(f"error: {error.message}", file=sys.stderr)
        return EXIT_FAILED
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=_program(), description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run a flow and print its outputs as JSON")
    run.add_argument("file", type=Path, help="the flow definition (YAML or JSON)")
    run.add_argument("--inputs", default="{}", help="inputs as a JSON object, or @FILE")
    run.add_argument(
        "--json", action="store_true", help="no live progress: the outputs only (when piped too)"
    )
    _add_tasks_option(run)
    run.set_defaults(command=_run)

    validate = commands.add_parser("validate", help="check a flow definition")
    validate.add_argument("file", type=Path, help="the flow definition (YAML or JSON)")
    _add_tasks_option(validate)
    validate.set_defaults(command=_validate)

    testing.add_command(commands)

    connections = commands.add_parser("connections", help="list connection plugins")
    connections.set_defaults(command=connection.list_plugins)
    connection.add_commands(commands)
    scaffold_command.add_command(commands)

    serve = commands.add_parser("serve", help="serve the HTTP API (settings from env / .env)")
    serve.add_argument(
        "--host",
        help="default: the HOST setting; on a loopback address, only the loopback names are "
        "answered unless ALLOWED_HOSTS says otherwise",
    )
    serve.add_argument("--port", type=int, help="default: the PORT setting")
    serve.set_defaults(command=_serve)

    worker = commands.add_parser("worker", help="run queued runs (PostgreSQL or MariaDB store)")
    worker.add_argument("--concurrency", type=int, help="default: the WORKER_CONCURRENCY setting")
    worker.set_defaults(command=_worker)

    database = commands.add_parser("db", help="manage the store's schema")
    database_commands = database.add_subparsers(required=True, metavar="ACTION")
    upgrade = database_commands.add_parser("upgrade", help="apply migrations (alembic)")
    upgrade.add_argument("--revision", default="head")
    upgrade.set_defaults(command=_db_upgrade)

    _add_account_commands(commands)
    from app.cli import watch  # noqa: PLC0415 - it uses this module's helpers

    watch.add_command(commands)
    return parser


def _program() -> str:
    """The name the user called: `flowlang` (the script, or `python -m flowlang[.scaffolder]`,
    whose files lie in the `flowlang` package) or `python -m app`."""
    called = Path(sys.argv[0])
    return "flowlang" if "flowlang" in (called.name, called.parent.name) else "python -m app"


def _add_account_commands(commands: Any) -> None:
    users = commands.add_parser("users", help="manage users (the store of DATABASE_URL)")
    user_commands = users.add_subparsers(required=True, metavar="ACTION")
    create = user_commands.add_parser("create", help="create a user and print a new API key")
    create.add_argument("name")
    create.add_argument("--admin", action="store_true", help="an administrator")
    create.add_argument("--email")
    create.add_argument(
        "--password-stdin", action="store_true", help="read a dashboard password from stdin"
    )
    create.add_argument("--no-key", action="store_true", help="print no API key")
    create.set_defaults(command=_users_create)
    listing = user_commands.add_parser("list", help="list users")
    listing.set_defaults(command=_users_list)
    password = user_commands.add_parser(
        "set-password", help="set a user's dashboard password (read from stdin)"
    )
    password.add_argument("name")
    password.set_defaults(command=_users_set_password)

    keys = commands.add_parser("keys", help="manage API keys (the store of DATABASE_URL)")
    key_commands = keys.add_subparsers(required=True, metavar="ACTION")
    create_key = key_commands.add_parser("create", help="make an API key and print it")
    create_key.add_argument("user")
    create_key.add_argument(
        "--scope",
        action="append",
        choices=[scope.value for scope in Scope],
        help="what the key may do (repeat); default: everything its user may",
    )
    create_key.add_argument("--name", default="", help="to tell it apart")
    create_key.add_argument("--expires-in-days", type=float, metavar="DAYS")
    create_key.set_defaults(command=_keys_create)
    list_keys = key_commands.add_parser("list", help="list API keys (a user's, or everyone's)")
    list_keys.add_argument("user", nargs="?")
    list_keys.set_defaults(command=_keys_list)
    revoke = key_commands.add_parser("revoke", help="revoke an API key: it stops working at once")
    revoke.add_argument("id")
    revoke.set_defaults(command=_keys_revoke)


def _add_tasks_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tasks",
        action="append",
        default=[],
        metavar="MODULE",
        help="task module (dotted name or .py path); default: flow.py beside FILE if present",
    )


def _run(arguments: argparse.Namespace) -> int:
    source = _read(arguments.file)
    inputs = _inputs(arguments.inputs)
    executor = FlowExecutor(_registry(arguments), env=default_environment(arguments.file.parent))
    try:
        if not arguments.json and sys.stdout.isatty():
            from app.cli import progress  # noqa: PLC0415 - rich, for terminals only

            outputs = progress.execute_with_progress(executor, source, inputs)
        else:
            outputs = asyncio.run(executor.execute_flow(source, inputs))
    except (DefinitionError, InputValidationError) as error:
        _print_problems(arguments.file, error, sys.stderr)
        return EXIT_FAILED
    except FlowFailedError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(outputs, indent=2, default=str, ensure_ascii=False))
    return EXIT_OK


def _validate(arguments: argparse.Namespace) -> int:
    source = _read(arguments.file)
    executor = FlowExecutor(
        _registry(arguments), definition_limits=definition_limits(get_settings())
    )
    try:
        definition = executor.load(source)
    except DefinitionError as error:
        _print_problems(arguments.file, error, sys.stdout)
        return EXIT_FAILED
    print(f"{arguments.file}: valid flow {definition.name!r} with {len(definition.steps)} steps")
    return EXIT_OK


def _serve(arguments: argparse.Namespace) -> int:
    from app.server import serve  # noqa: PLC0415 - the service stack is heavy

    serve(_serving_settings(arguments))
    return EXIT_OK


def _serving_settings(arguments: argparse.Namespace) -> Settings:
    """The settings with `--host`/`--port` in place of HOST/PORT: the app decides from where
    it listens whether callers must authenticate and which Host names it answers to.

    Validated again, so that `--host 0.0.0.0` with AUTH=off is refused as HOST=0.0.0.0 is."""
    chosen = {"host": arguments.host, "port": arguments.port}
    values = get_settings().model_dump() | {key: value for key, value in chosen.items() if value}
    try:
        return Settings.model_validate(values)
    except ValueError as error:
        raise UsageError(str(error)) from None


def _worker(arguments: argparse.Namespace) -> int:
    from app.services.observability import logs  # noqa: PLC0415 - the service stack is heavy
    from app.worker.standalone import serve_worker  # noqa: PLC0415

    settings = get_settings()
    if settings.log_format == "json":
        logs.configure("json", settings.log_level)
    else:
        logging.basicConfig(level=settings.log_level.upper())
    try:
        serve_worker(get_settings(), concurrency=arguments.concurrency)
    except FlowManagerError as error:
        raise UsageError(error.message) from error
    return EXIT_OK


def _db_upgrade(arguments: argparse.Namespace) -> int:
    from app.store.migrations import upgrade_url  # noqa: PLC0415 - alembic is slow to import

    settings = get_settings()
    upgrade_url(settings.database_url, arguments.revision)
    print(f"{redact_url(settings.database_url)}: upgraded to {arguments.revision}")
    return EXIT_OK


def _users_create(arguments: argparse.Namespace) -> int:
    from app.cli import accounts  # noqa: PLC0415 - the store stack is heavy

    password = _password_from_stdin() if arguments.password_stdin else None
    user, key = asyncio.run(
        accounts.create_user(
            get_settings(),
            arguments.name,
            admin=arguments.admin,
            email=arguments.email,
            password=password,
            with_key=not arguments.no_key,
        )
    )
    role = "admin" if user.is_admin else "user"
    print(f"created {role} {user.username!r}", file=sys.stderr)
    if key is not None:
        print(f"API key (shown once, keep it safe; id {key.record.id}):", file=sys.stderr)
        print(key.secret)
    return EXIT_OK


def _users_list(_: argparse.Namespace) -> int:
    from app.cli import accounts  # noqa: PLC0415

    for user in asyncio.run(accounts.list_users(get_settings())):
        role = "admin" if user.is_admin else "user"
        print(f"{user.username}\t{role}\t{user.email or '-'}\t{user.created_at.isoformat()}")
    return EXIT_OK


def _users_set_password(arguments: argparse.Namespace) -> int:
    from app.cli import accounts  # noqa: PLC0415

    password = _password_from_stdin()
    asyncio.run(accounts.set_password(get_settings(), arguments.name, password))
    print(f"password of {arguments.name!r} set", file=sys.stderr)
    return EXIT_OK


def _keys_create(arguments: argparse.Namespace) -> int:
    from app.cli import accounts  # noqa: PLC0415

    scopes = [Scope(scope) for scope in arguments.scope] if arguments.scope else None
    key = asyncio.run(
        accounts.create_key(
            get_settings(),
            arguments.user,
            name=arguments.name,
            scopes=scopes,
            expires_in_days=arguments.expires_in_days,
        )
    )
    print(f"API key for {arguments.user!r} (shown once; id {key.record.id}):", file=sys.stderr)
    print(key.secret)
    return EXIT_OK


def _keys_list(arguments: argparse.Namespace) -> int:
    from app.cli import accounts  # noqa: PLC0415

    for key in asyncio.run(accounts.list_keys(get_settings(), arguments.user)):
        state = "revoked" if key.revoked_at else "active"
        scopes = ",".join(key.scopes) if key.scopes is not None else "all"
        used = key.last_used_at.isoformat() if key.last_used_at else "never"
        print(
            f"{key.id}\t{key.username}\t{key.prefix}...\t{key.name or '-'}\t{scopes}\t{state}"
            f"\tlast used {used}"
        )
    return EXIT_OK


def _keys_revoke(arguments: argparse.Namespace) -> int:
    from app.cli import accounts  # noqa: PLC0415

    asyncio.run(accounts.revoke_key(get_settings(), arguments.id))
    print(f"key {arguments.id} revoked", file=sys.stderr)
    return EXIT_OK


def _password_from_stdin() -> str:
    password = sys.stdin.readline().rstrip("\n")
    if not password:
        raise UsageError("no password on standard input")
    return password


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read {path}: {error}") from error


def _inputs(text: str) -> dict[str, Any]:
    if text.startswith("@"):
        text = _read(Path(text[1:]))
    try:
        inputs = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"--inputs is not valid JSON: {error}") from error
    if not isinstance(inputs, dict):
        raise UsageError("--inputs must be a JSON object")
    return inputs


def _registry(arguments: argparse.Namespace) -> TaskRegistry:
    try:
        return load_task_modules(_task_module_names(arguments))
    except TaskModuleError as error:
        raise UsageError(error.message) from error


def _task_module_names(arguments: argparse.Namespace) -> list[str]:
    """`--tasks`, else the `flow.py` beside FILE when there is one."""
    modules: list[str] = list(arguments.tasks)
    beside = arguments.file.parent / "flow.py"
    if not modules and beside.is_file():
        modules.append(str(beside))
    return modules


def _print_problems(
    path: Path, error: DefinitionError | InputValidationError, stream: TextIO
) -> None:
    """One line per problem, `FILE:LINE:COLUMN: place: message` like a compiler's."""
    for problem in error.problems:
        where = f"{path}:{problem.line}:{problem.column}" if problem.line else str(path)
        place = format_loc(problem.loc) or "<definition>"
        print(f"{where}: {place}: {problem.msg}", file=stream)
