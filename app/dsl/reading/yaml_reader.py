"""Reading a definition's YAML text: the passes, in order.

Characters YAML refuses are reported first, by this module, because libyaml would report them
at a byte offset and every other position is in characters. Then unquoted placeholders are
shielded, the text is read into nodes within the limits, and the nodes become plain data under
the YAML 1.2 core schema. JSON is read through here too, to find where its keys and items are.
"""

from __future__ import annotations

import re

from app.dsl.reading.yaml_data import Reading, build_data
from app.dsl.reading.yaml_nodes import read_nodes
from app.dsl.reading.yaml_placeholders import shield_placeholders
from app.dsl.reading.yaml_positions import TEXT_START, definition_error, position_at

# PyYAML's own set of the characters YAML accepts in a stream.
_NON_PRINTABLE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)


def read_yaml(source: str) -> Reading:
    """The data of `source` and where each key and item is; refusals raise `DefinitionError`."""
    _refuse_unprintable(source)
    shielded, restore = shield_placeholders(source)
    root = read_nodes(shielded, restore)
    if root is None:
        return Reading(None, {(): TEXT_START}, [])
    return build_data(root, restore)


def _refuse_unprintable(source: str) -> None:
    unprintable = _NON_PRINTABLE.search(source)
    if unprintable:
        raise definition_error(
            f"unacceptable character #x{ord(unprintable.group()):04x}: "
            "special characters are not allowed",
            "yaml_syntax",
            position_at(source, unprintable.start()),
        )
