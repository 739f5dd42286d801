"""SQL text is written in the definition, never made by `${...}`: values travel as parameters.

A task declares which of its parameters hold SQL text (`TaskSpec.sql_text`): a parameter name
(`query`) or a path into one in which `[]` stands for every element of a list
(`queries[].query`). A placeholder anywhere on such a path would splice a value into the SQL —
in the text (`"SELECT '${inputs.p}'"`), as the whole text (`${inputs.q}`), or as a container
of texts (`queries: ${inputs.queries}`) — so validation refuses it, and the engine checks the
compiled step again before running it (`spliced_sql`), for definitions built in code.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from app.dsl.placeholders import find_placeholders
from app.dsl.problems import ProblemCollector
from app.dsl.templates import Template, written_at
from app.errors import ExpressionSyntaxError, Loc, format_loc

EVERY_ELEMENT = "[]"
_PATH_PART = re.compile(r"\[\]|[^.\[\]]+")
EXAMPLE = 'e.g. `query: "SELECT name FROM users WHERE id = $1"` with `params: [${inputs.id}]`'


def sql_path(declared: str) -> tuple[str, ...]:
    """`"queries[].query"` -> `("queries", "[]", "query")`."""
    return tuple(_PATH_PART.findall(declared))


def check_sql_text(
    arguments: Mapping[str, Any], declared: Iterable[str], loc: Loc, problems: ProblemCollector
) -> None:
    """Record a problem for each placeholder on a declared SQL-text path of the raw
    `arguments` (found at `loc` in the definition)."""
    for path in declared:
        found: list[tuple[Loc, bool]] = []
        _walk(arguments, sql_path(path), (), found)
        for where, is_text in found:
            problems.add((*loc, *where), _message(where, is_text), "sql_placeholder")


def spliced_sql(arguments: Mapping[str, Template], declared: Iterable[str]) -> str | None:
    """Why a compiled step's SQL text would be made by a placeholder, or None: the engine's
    check before it runs a task that declares SQL text."""
    for path in declared:
        name, *rest = sql_path(path)
        template = arguments.get(name)
        if template is not None and not written_at(template, rest):
            return (
                f"`{path}` is SQL text and may not hold `${{...}}`: write $1, $2... in it and "
                f"pass the values in `params` ({EXAMPLE})"
            )
    return None


def _walk(value: Any, path: Sequence[str], loc: Loc, found: list[tuple[Loc, bool]]) -> None:
    if isinstance(value, str):
        if _has_placeholder(value):
            found.append((loc, not path))
        return
    if not path:
        return
    head, rest = path[0], path[1:]
    if head == EVERY_ELEMENT:
        if isinstance(value, list):
            for index, item in enumerate(value):
                _walk(item, rest, (*loc, index), found)
    elif isinstance(value, Mapping) and head in value:
        _walk(value[head], rest, (*loc, head), found)


def _has_placeholder(text: str) -> bool:
    try:
        return bool(find_placeholders(text))
    except ExpressionSyntaxError:  # a broken placeholder: the template reports it
        return False


def _message(where: Loc, is_text: bool) -> str:
    name = format_loc(where)
    if is_text:
        return (
            f"`{name}` is SQL text: `${{...}}` would splice a value into the SQL. Write $1, "
            f"$2... in it and pass the values in `params`, {EXAMPLE}"
        )
    return (
        f"`{name}` holds SQL text, which cannot come from `${{...}}`: write the SQL in the "
        f"definition, with $1, $2... for the values and the values in `params`, {EXAMPLE}"
    )
