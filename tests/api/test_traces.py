"""Traces: a span per run and per attempt, in the trace of the request that started the run
(its `traceparent`), wherever the run executes; nothing of OpenTelemetry's SDK loaded when
tracing is off."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from app.services.observability import traces
from app.services.observability.otel import OtelTracing
from app.settings import Settings
from tests.api.flows import GREET_YAML
from tests.api.support import ROOT, api_settings, poll_run, register, serve

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
# What only the extra loads (FastAPI itself imports OpenTelemetry's API).
NOT_TRACED_WITHOUT_IT = ("opentelemetry.sdk", "opentelemetry.exporter", OtelTracing.__module__)


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """The spans the service ends, kept in memory (as if OTEL_EXPORTER_OTLP_ENDPOINT were set)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    def tracing_of(settings: Settings) -> traces.Tracing:
        return OtelTracing(provider)

    monkeypatch.setattr(traces, "tracing_of", tracing_of)
    yield exporter
    provider.shutdown()


def hex_id(value: int, digits: int) -> str:
    return format(value, f"0{digits}x")


def run_and_attempts(spans: tuple[ReadableSpan, ...], flow: str) -> tuple[ReadableSpan, list[str]]:
    """The run's span; the steps of the attempt spans under it."""
    (run,) = [span for span in spans if span.name == f"run {flow}"]
    assert hex_id(run.context.trace_id, 32) == TRACE_ID
    assert run.parent is not None
    assert hex_id(run.parent.span_id, 16) == PARENT_ID
    children = [
        span
        for span in spans
        if span.parent is not None and span.parent.span_id == run.context.span_id
    ]
    assert all(span.context.trace_id == run.context.trace_id for span in children)
    return run, [str((span.attributes or {})["flow_manager.step_id"]) for span in children]


async def test_an_executed_run_joins_the_requests_trace(
    database_url: str, exported: InMemorySpanExporter
) -> None:
    async with serve(api_settings(database_url)) as client:
        await register(client, GREET_YAML)
        answer = await client.post(
            "/flows/Greet/execute",
            json={"inputs": {"name": "Ada"}},
            headers={"traceparent": TRACEPARENT},
        )

    run, steps = run_and_attempts(exported.get_finished_spans(), "Greet")
    assert run.attributes is not None
    assert run.attributes["flow_manager.run_id"] == answer.json()["run_id"]
    assert run.attributes["flow_manager.status"] == "completed"
    assert steps == ["greet"]  # `shout` was skipped: no attempt


async def test_a_queued_run_keeps_the_trace_for_the_worker_that_claims_it(
    database_url: str, exported: InMemorySpanExporter
) -> None:
    async with serve(api_settings(database_url)) as client:
        await register(client, GREET_YAML)
        started = await client.post(
            "/flows/Greet/runs",
            json={"inputs": {"name": "Ada"}},
            headers={"traceparent": TRACEPARENT},
        )
        await poll_run(client, started.json()["run_id"])

    _, steps = run_and_attempts(exported.get_finished_spans(), "Greet")
    assert steps == ["greet"]


async def test_a_malformed_traceparent_is_ignored(
    client: httpx.AsyncClient, exported: InMemorySpanExporter
) -> None:
    await register(client, GREET_YAML)

    answer = await client.post(
        "/flows/Greet/execute",
        json={"inputs": {"name": "Ada"}},
        headers={"traceparent": "00-not-a-trace-01"},
    )

    assert answer.status_code == 200
    assert answer.json()["status"] == "completed"


def test_valid_traceparents() -> None:
    assert traces.valid_traceparent(TRACEPARENT) == TRACEPARENT
    assert traces.valid_traceparent(f" {TRACEPARENT} ") == TRACEPARENT
    assert traces.valid_traceparent(None) is None
    assert traces.valid_traceparent(TRACEPARENT.upper()) is None
    assert traces.valid_traceparent(f"00-{'0' * 32}-{PARENT_ID}-01") is None
    assert traces.valid_traceparent(f"ff-{TRACE_ID}-{PARENT_ID}-01") is None


NO_TRACING_SCRIPT = """
import asyncio
import sys

from tests.api.flows import GREET_YAML
from tests.api.support import api_settings, register, serve


async def main() -> None:
    async with serve(api_settings("sqlite+aiosqlite:///store.db")) as client:
        await register(client, GREET_YAML)
        answer = await client.post(
            "/flows/Greet/execute",
            json={"inputs": {"name": "Ada"}},
            headers={"traceparent": "TRACEPARENT"},
        )
        assert answer.json()["status"] == "completed", answer.text


asyncio.run(main())
print(sorted(name for name in sys.modules if name.startswith(NOT_TRACED)))
"""


def test_without_tracing_nothing_of_the_otel_extra_is_imported(tmp_path: Path) -> None:
    """FastAPI itself imports OpenTelemetry's API; the SDK, the exporter and our tracing
    module are the extra's, loaded only when tracing is on."""
    script = NO_TRACING_SCRIPT.replace("TRACEPARENT", TRACEPARENT).replace(
        "NOT_TRACED", repr(NOT_TRACED_WITHOUT_IT)
    )
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=tmp_path,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
