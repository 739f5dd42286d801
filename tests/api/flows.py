"""Flow definitions the API tests register."""

from __future__ import annotations

import json
from typing import Any

GREET_YAML = """\
flow: Greet
description: Say hello
inputs:
  - {name: name, type: string, required: true}
  - {name: times, type: integer, default: 1}
steps:
  - set:
      id: greet
      values: {text: "Hello, ${inputs.name}!"}
  - set:
      id: shout
      if: "${inputs.times} > 1"
      values: {text: "${upper(greet.text)}"}
outputs:
  text: ${greet.text}
  times: ${inputs.times}
"""

GREET_JSON: dict[str, Any] = {
    "flow": "GreetJson",
    "description": "Say hello, in JSON",
    "inputs": {"name": {"type": "string", "required": True}},
    "steps": [{"set": {"id": "greet", "values": {"text": "Hello, ${inputs.name}!"}}}],
    "outputs": {"text": "${greet.text}"},
}

FAILING_YAML = """\
flow: Failing
inputs:
  - {name: reason, type: string, default: broken}
steps:
  - set: {id: before, values: {ok: true}}
  - fail: {id: explode, message: "it is ${inputs.reason}"}
  - set: {id: after, values: {ok: true}}
"""

SLOW_YAML = """\
flow: Slow
steps:
  - set: {id: first, values: {ok: true}}
  - sleep: {id: nap, seconds: 30}
  - set: {id: last, values: {ok: true}}
"""

RESUMABLE_YAML = """\
flow: Resumable
inputs:
  - {name: directory, type: string, required: true}
steps:
  - task: RecordExecution
    id: first
    inputs: {directory: "${inputs.directory}", name: first}
  - task: FailUntilMarker
    id: second
    inputs: {directory: "${inputs.directory}", name: second, marker: ready}
  - task: RecordExecution
    id: third
    inputs: {directory: "${inputs.directory}", name: third}
outputs:
  second: ${second.count}
"""


def as_json(definition: dict[str, Any]) -> bytes:
    return json.dumps(definition).encode()
