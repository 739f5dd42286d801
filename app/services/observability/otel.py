"""`OtelTracing`: the run and attempt spans, with OpenTelemetry (the optional `otel` extra).

Imported only by `traces.tracing_of` when tracing is asked for: nothing else in the service
imports `opentelemetry`.

A run's span is opened when its execution starts in this process, as a child of the request
that started the run (its kept `traceparent`), and made current in the run's asyncio task, so
its attempts' spans — and whatever the tasks trace themselves — nest under it. A run resumed
elsewhere (taken over, retried) opens a new run span in the same trace.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from app.domain.runs import RunStatus, TaskKey, TaskStatus
from app.services.observability.traces import Tracing

SCOPE = "flow_manager"
_PROPAGATOR = TraceContextTextMapPropagator()


class OtelTracing(Tracing):
    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer(SCOPE)

    @classmethod
    def exporting(cls, endpoint: str, service_name: str) -> OtelTracing:
        """Spans sent in batches to the OTLP/HTTP collector at `endpoint`."""
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,
        )

        provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        exporter = OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces")
        provider.add_span_processor(BatchSpanProcessor(exporter))
        # The process's provider: FastAPI's own request spans are exported too, and a run
        # becomes a child of the request that started it.
        trace.set_tracer_provider(provider)
        return cls(provider)

    def request_traceparent(self, header: str | None) -> str | None:
        """The current span's context when the request is traced (FastAPI's own request span,
        with this provider set as the process's), else the request's header."""
        if trace.get_current_span().get_span_context().is_valid:
            carrier: dict[str, str] = {}
            _PROPAGATOR.inject(carrier)
            return carrier.get("traceparent")
        return super().request_traceparent(header)

    def run_started(self, run_id: str, flow: str, traceparent: str | None) -> Any:
        parent = _PROPAGATOR.extract({"traceparent": traceparent}) if traceparent else None
        span = self.tracer.start_span(
            f"run {flow}",
            context=parent,
            attributes={"flow_manager.run_id": run_id, "flow_manager.flow": flow},
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        return span, token

    def run_ended(self, started: Any, status: RunStatus | None) -> None:
        span, token = started
        otel_context.detach(token)
        _end(span, None if status is None else status.value, status is RunStatus.FAILED)

    def attempt_started(self, run_id: str, key: TaskKey, task: str, attempt: int) -> Any:
        span = self.tracer.start_span(
            f"attempt {key.step_id}",
            attributes={
                "flow_manager.run_id": run_id,
                "flow_manager.step_id": key.step_id,
                "flow_manager.task_index": key.task_index,
                "flow_manager.task": task,
                "flow_manager.attempt": attempt,
            },
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        return span, token

    def attempt_ended(self, started: Any, status: TaskStatus) -> None:
        span, token = started
        otel_context.detach(token)
        _end(span, status.value, status is TaskStatus.FAILED)

    def close(self) -> None:
        self.provider.shutdown()


def _end(span: Span, status: str | None, failed: bool) -> None:
    if status is not None:
        span.set_attribute("flow_manager.status", status)
    if failed:
        span.set_status(Status(StatusCode.ERROR))
    span.end()
