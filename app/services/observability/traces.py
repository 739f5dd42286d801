"""Traces: a span per run and per attempt, in the trace of the request that started the run.

Optional: with the `otel` extra installed (`pip install flow-manager[otel]`) and
OTEL_EXPORTER_OTLP_ENDPOINT set, `tracing_of` returns the OpenTelemetry implementation
(`otel.py`, which alone imports `opentelemetry`). Otherwise it returns `Tracing`, which does
nothing and imports nothing: a service without the extra never loads OpenTelemetry.

The link across processes is the run's `traceparent` (W3C trace context): the request that
starts a run hands it over, the run keeps it in its row, and whichever process executes the
run — the one that took the request, or a worker elsewhere that claimed it — opens the run's
span as a child of that request's span. Attempt spans are children of their run's span.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from app.domain.runs import RunStatus, TaskKey, TaskStatus
from app.settings import Settings

logger = logging.getLogger(__name__)

# version-trace id-parent id-flags, lower-case hex; version ff and all-zero ids are invalid.
_TRACEPARENT = re.compile(
    r"^(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$"
)


def valid_traceparent(value: str | None) -> str | None:
    """The header when it is a valid W3C `traceparent`, else None (ignored, not refused)."""
    if value is None:
        return None
    value = value.strip()
    return value if _TRACEPARENT.match(value) else None


class Tracing:
    """No tracing: every call does nothing."""

    def request_traceparent(self, header: str | None) -> str | None:
        """The trace context a run started by the current request keeps: the request's
        `traceparent` header, when valid."""
        return valid_traceparent(header)

    def run_started(self, run_id: str, flow: str, traceparent: str | None) -> Any:
        return None

    def run_ended(self, started: Any, status: RunStatus | None) -> None:
        """`status` None: the run stopped here without an end (lost, or handed over)."""

    def attempt_started(self, run_id: str, key: TaskKey, task: str, attempt: int) -> Any:
        return None

    def attempt_ended(self, started: Any, status: TaskStatus) -> None:
        pass

    def close(self) -> None:
        pass


NO_TRACING = Tracing()


def tracing_of(settings: Settings) -> Tracing:
    """OpenTelemetry when OTEL_EXPORTER_OTLP_ENDPOINT is set and the extra is installed."""
    endpoint = settings.otel_exporter_otlp_endpoint
    if not endpoint:
        return NO_TRACING
    try:
        from app.services.observability.otel import OtelTracing  # noqa: PLC0415 - optional

        return OtelTracing.exporting(endpoint, settings.otel_service_name)
    except ImportError as error:
        logger.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but the otel extra is not installed "
            "(pip install 'flow-manager[otel]': %s); no traces",
            error,
        )
        return NO_TRACING
