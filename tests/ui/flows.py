"""The flows the browser tests start from the dashboard, with tasks of tests/api/tasks.py."""

from __future__ import annotations

from tests.api.flows import RESUMABLE_YAML

GREET_V1 = """\
flow: Greet
description: Say hello, as loudly as asked
mode: dag
inputs:
  - {name: name, type: string, required: true, description: who to greet}
  - {name: times, type: integer, default: 1}
  - {name: polite, type: boolean}
steps:
  - set:
      id: words
      values: {hello: Hello}
  - set:
      id: greet
      depends_on: [words]
      values: {text: "${words.hello}, ${inputs.name}!"}
  - set:
      id: shout
      depends_on: [greet]
      values: {text: "${upper(greet.text)}"}
  - set:
      id: count
      depends_on: [words]
      values: {times: "${inputs.times}"}
outputs:
  text: ${greet.text}
  loud: ${shout.text}
"""

# v2 changes one greeting: the diff between the two versions shows it.
GREET_V2 = GREET_V1.replace("values: {hello: Hello}", "values: {hello: Bonjour}")

GATE = """\
flow: Gate
description: Waits until the test opens its gate, a marker file
inputs:
  - {name: directory, type: string, required: true}
  - {name: marker, type: string, required: true}
steps:
  - task: WaitForMarker
    id: wait
    inputs: {directory: "${inputs.directory}", marker: "${inputs.marker}"}
  - set: {id: after, values: {done: true}}
"""

# tests/api's flow that fails until its marker exists, described as the dashboard shows it.
RESUMABLE = RESUMABLE_YAML.replace(
    "flow: Resumable\n",
    "flow: Resumable\n"
    "description: Fails until a marker file exists, then resumes where it failed\n",
    1,
)

APPROVAL = """\
flow: Approval
description: Waits for a person's answer, a signal
steps:
  - wait_for: {id: answer, signal: answer}
  - set: {id: after, values: {yes: "${answer.payload.yes}"}}
outputs: {yes: "${after.yes}"}
"""
