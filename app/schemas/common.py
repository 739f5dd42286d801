"""Shapes shared by every resource: timestamps, errors and run errors."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainSerializer, WithJsonSchema

from app.domain.runs import RunError

# ISO 8601 with an explicit offset (`+00:00`), whatever pydantic's default spelling is.
Timestamp = Annotated[
    datetime,
    PlainSerializer(lambda moment: moment.isoformat(), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization"),
]


class RequestModel(BaseModel):
    """A request body: unknown fields are refused, so a misspelt field is never ignored, and
    values are taken only as the types the schema names (strict): `"wait": false` or
    `"version": "2"` are 422, not quietly read as 0 and 2."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Message(BaseModel):
    """An error answered as a sentence."""

    detail: str


class ProblemItem(BaseModel):
    """One thing wrong with the request; `loc` points into the body, query or definition."""

    loc: list[str | int]
    msg: str
    type: str
    line: int | None = None  # YAML/JSON position in a definition, where known
    column: int | None = None


class Problems(BaseModel):
    """An error answered as a list of problems (FastAPI's validation shape)."""

    detail: list[ProblemItem]


class ErrorInfo(BaseModel):
    """Why a run or a step failed."""

    step: str | None
    type: str
    message: str

    @classmethod
    def of(cls, error: RunError | None) -> ErrorInfo | None:
        return (
            None if error is None else cls(step=error.step, type=error.type, message=error.message)
        )


HEAD_TOO_LARGE = "The request line and headers are larger than MAX_HEADER_BYTES"


def error_responses(
    *statuses: int, also: dict[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI documentation of the error answers a route gives (and `also` other answers)."""
    described = {
        401: ("No credential, or one that is unknown, revoked or expired", Message),
        403: ("The caller may see this but not do that (scope or permission)", Message),
        404: ("Unknown flow, version or run", Message),
        409: ("The run's state forbids that", Message),
        413: ("The body is larger than MAX_BODY_BYTES", Message),
        415: ("The body's Content-Type is not accepted here", Message),
        422: ("The request is invalid; each problem says where", Problems),
        429: ("Too many requests; Retry-After says when to try again", Message),
        503: ("The store is unreachable", Message),
    }
    documented: dict[int | str, dict[str, Any]] = {
        status: {"description": description} for status, description in (also or {}).items()
    }
    # Any request may carry a head (its line and headers) too large to read.
    documented[431] = {"description": HEAD_TOO_LARGE, "model": Message}
    for status in statuses:
        documented[status] = {"description": described[status][0], "model": described[status][1]}
    return documented
