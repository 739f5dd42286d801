"""The Flow Manager seed's sample request (examples/flow_manager/sample_request.json)."""

from __future__ import annotations

import json
from typing import Any

from tests.api.support import EXAMPLES

SAMPLE: dict[str, Any] = json.loads((EXAMPLES / "flow_manager" / "sample_request.json").read_text())
