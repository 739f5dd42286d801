"""The limits on a definition's size, and the refusals that report passing them.

Definitions arrive in API requests, so loading must stay cheap on hostile text: a huge file,
the "billion laughs" (a few lines of aliases that expand to billions of values), nesting deep
enough to exhaust the stack. YAML is measured as if every alias were expanded, and JSON obeys
the same limits, so no format is a way around them.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.dsl.reading.yaml_positions import Position, definition_error
from app.errors import DefinitionError, Loc, Problem

MAX_DEFINITION_BYTES = 1024 * 1024  # of UTF-8 text
MAX_NODES = 100_000  # values, once aliases are expanded
MAX_DEPTH = 100  # nested mappings and lists
# Problems reported at once: a definition wrong in the same way at thousands of places (one
# YAML alias can repeat a mistake everywhere) would make an answer far larger than the request.
MAX_PROBLEMS = 100


def capped(problems: Sequence[Problem], left_out: int = 0) -> list[Problem]:
    """The first `MAX_PROBLEMS` problems, then one saying how many more there were."""
    left_out += max(0, len(problems) - MAX_PROBLEMS)
    shown = list(problems[:MAX_PROBLEMS])
    if left_out:
        shown.append(
            Problem(
                (),
                f"{left_out:,} more problems are not listed (the first {MAX_PROBLEMS} are)",
                "too_many_problems",
            )
        )
    return shown


def check_size(size: int) -> None:
    if size > MAX_DEFINITION_BYTES:
        raise definition_error(
            f"definition too large: more than {MAX_DEFINITION_BYTES} bytes", "too_large"
        )


def too_deep(at: Position | None, loc: Loc = ()) -> DefinitionError:
    return definition_error(
        f"the definition nests mappings and lists more than {MAX_DEPTH} levels deep",
        "too_deep",
        at,
        loc,
    )


def too_many_nodes(at: Position | None, loc: Loc = ()) -> DefinitionError:
    return definition_error(
        f"the definition has more than {MAX_NODES} values once aliases are expanded",
        "too_many_nodes",
        at,
        loc,
    )
