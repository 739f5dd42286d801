"""schemathesis hooks for tests/api/test_fuzzing.py (loaded by name from schemathesis.toml)."""

from __future__ import annotations

from typing import Any

import schemathesis
import yaml

YAML_TYPES = ("application/yaml", "text/yaml")


@schemathesis.serializer(*YAML_TYPES)
def definition_text(_: schemathesis.SerializationContext, value: Any) -> bytes:
    """A definition sent as YAML is the text of the document (the schema says `string`), not
    that string dumped as a YAML scalar, which would never be a definition."""
    text = value if isinstance(value, str) else yaml.safe_dump(value)
    return text.encode("utf-8", "surrogatepass")
