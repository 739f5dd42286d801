"""`connection list` and `connection example PLUGIN` (`flowlang connection ...` in the tutorial):
the connection plugins, whether their drivers are installed, and a working flow for each."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from app.cli.connection_examples import EXAMPLES
from app.connections.manager import available_plugins

EXIT_OK, EXIT_USAGE = 0, 2


def add_commands(commands: Any) -> None:
    """`connection list|example` under the subcommands `commands` of `python -m app`."""
    connection = commands.add_parser("connection", help="connection plugins and example flows")
    actions = connection.add_subparsers(required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="the plugins and whether their drivers are installed")
    listing.set_defaults(command=list_plugins)
    example = actions.add_parser("example", help="print a working example flow for a plugin")
    example.add_argument("plugin", help="a plugin's type, e.g. redis")
    example.set_defaults(command=print_example)


def list_plugins(_: argparse.Namespace) -> int:
    for plugin in available_plugins():
        mark = "✅" if plugin.installed else "❌"
        state = "installed" if plugin.installed else f"missing: pip install {plugin.driver}"
        print(f"{mark} {plugin.type:<10} {plugin.driver:<8} {plugin.description} ({state})")
    return EXIT_OK


def print_example(arguments: argparse.Namespace) -> int:
    known = [plugin.type for plugin in available_plugins()]
    if arguments.plugin not in known:
        print(
            f"error: no connection plugin {arguments.plugin!r}; known: {', '.join(known)}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    print(EXAMPLES[arguments.plugin], end="")
    return EXIT_OK
