"""Requests and answers of the `/flows` routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, TypeAdapter

from app.domain.records import FlowSummary, FlowVersion, StepRef, ValidationReport
from app.schemas.common import Timestamp

HELLO_YAML = """flow: Hello
description: Greet someone in several languages
mode: dag
inputs:
  - {name: name, type: string, required: true}
  - {name: languages, type: array, default: [en, fr]}
steps:
  - set:
      id: words
      values: {greetings: {en: Hello, fr: Bonjour, de: Hallo}}
  - set:
      id: greet
      for_each: ${inputs.languages}
      as: language
      values:
        text: "${words.greetings[language]}, ${inputs.name}!"
outputs:
  greetings: ${greet.text}
"""

HELLO_JSON: dict[str, Any] = {
    "flow": "Hello",
    "description": "Greet someone",
    "inputs": [{"name": "name", "type": "string", "required": True}],
    "steps": [{"set": {"id": "greet", "values": {"text": "Hello, ${inputs.name}!"}}}],
    "outputs": {"text": "${greet.text}"},
}

# The definition routes read their body themselves (YAML or JSON), so /docs learns of it here.
DEFINITION_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A flow definition as YAML (`application/yaml`, `text/yaml`, "
        "`application/x-yaml`) or JSON (`application/json`), at most MAX_BODY_BYTES.",
        "content": {
            "application/yaml": {"schema": {"type": "string"}, "example": HELLO_YAML},
            "text/yaml": {"schema": {"type": "string"}, "example": HELLO_YAML},
            "application/json": {"schema": {"type": "object"}, "example": HELLO_JSON},
        },
    }
}


class Registered(BaseModel):
    name: str
    version: int
    created_at: Timestamp
    checksum: str = Field(description="sha256 of the definition's text")

    @classmethod
    def of(cls, flow: FlowVersion) -> Registered:
        return cls(
            name=flow.name, version=flow.version, created_at=flow.created_at, checksum=flow.checksum
        )


class FlowListItem(BaseModel):
    name: str
    version: int = Field(description="the latest version")
    description: str
    checksum: str
    created_at: Timestamp
    owner: str | None = Field(None, description="the user who owns the flow")
    public: bool = Field(False, description="viewable by every user")

    @classmethod
    def of(cls, flow: FlowSummary) -> FlowListItem:
        return cls(
            name=flow.name,
            version=flow.version,
            description=flow.description,
            checksum=flow.checksum,
            created_at=flow.created_at,
            owner=flow.owner,
            public=flow.public,
        )


class FlowDetail(BaseModel):
    name: str
    version: int
    description: str
    definition: Any = Field(description="the definition as data")
    source: str = Field(description="the definition's text as registered")
    checksum: str
    created_at: Timestamp
    created_by: str | None = Field(None, description="the user who registered this version")
    change_notes: str | None = Field(None, description="why this version was registered")
    owner: str | None = Field(None, description="the user who owns the flow")
    public: bool = Field(False, description="viewable by every user")

    @classmethod
    def of(cls, flow: FlowVersion) -> FlowDetail:
        return cls(
            name=flow.name,
            version=flow.version,
            description=flow.description,
            definition=flow.definition,
            source=flow.source,
            checksum=flow.checksum,
            created_at=flow.created_at,
            created_by=flow.created_by,
            change_notes=flow.change_notes,
            owner=flow.owner,
            public=flow.public,
        )


class VersionItem(BaseModel):
    version: int
    checksum: str
    created_at: Timestamp
    created_by: str | None = None
    change_notes: str | None = None

    @classmethod
    def of(cls, flow: FlowVersion) -> VersionItem:
        return cls(
            version=flow.version,
            checksum=flow.checksum,
            created_at=flow.created_at,
            created_by=flow.created_by,
            change_notes=flow.change_notes,
        )


class StepItem(BaseModel):
    id: str
    task: str
    depends_on: list[str]
    handler_of: str | None = Field(description="the step whose failure this step handles")


class Edge(BaseModel):
    model_config = ConfigDict(serialize_by_alias=True)

    from_: str = Field(alias="from", description="the step that must finish first")
    to: str


class ValidationResult(BaseModel):
    valid: bool = True
    name: str
    steps: list[StepItem]
    edges: list[Edge]

    @staticmethod
    def json_of(report: ValidationReport) -> bytes:
        """This model's JSON for the report, written by pydantic-core straight from the
        report's own objects: a model per step and per edge (10,000 at 5,000 steps) took
        15-100 ms of the event loop to build, the collector's passes over them included;
        this takes a few, and allocates one small mapping per edge."""
        answer = _ValidationAnswer(name=report.name, steps=report.steps, edges=report.edges)
        return _VALIDATION_ANSWER.dump_json(answer)


def _edge_objects(edges: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
    return [{"from": first, "to": then} for first, then in edges]


@dataclass(frozen=True, kw_only=True)
class _ValidationAnswer:
    """ValidationResult's shape over the report's objects (StepRef has StepItem's fields)."""

    valid: bool = True
    name: str
    steps: tuple[StepRef, ...]
    edges: Annotated[tuple[tuple[str, str], ...], PlainSerializer(_edge_objects)]


_VALIDATION_ANSWER = TypeAdapter(_ValidationAnswer)
