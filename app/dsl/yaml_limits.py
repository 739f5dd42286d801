"""The limits on a definition's size, and the refusals that report passing them.

Definitions arrive in API requests, so loading must stay cheap on hostile text: a huge file,
the "billion laughs" (a few lines of aliases that expand to billions of values), nesting deep
enough to exhaust the stack. YAML is measured as if every alias were expanded, and JSON obeys
the same limits, so no format is a way around them.
"""

from __future__ import annotations

from app.dsl.yaml_positions import Position, definition_error
from app.errors import DefinitionError, Loc

MAX_DEFINITION_BYTES = 1024 * 1024  # of UTF-8 text
MAX_NODES = 100_000  # values, once aliases are expanded
MAX_DEPTH = 100  # nested mappings and lists


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
