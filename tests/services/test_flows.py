"""The flow service validates and registers definitions without holding up the event loop."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.services.container import Services
from app.services.flows import FlowService
from app.settings import Settings
from tests.callers import admin
from tests.loop import watch_loop


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    settings = Settings(_env_file=None, database_url=f"sqlite+aiosqlite:///{tmp_path / 's.db'}")
    opened = await Services.open(settings)
    yield opened
    await opened.close(grace=0)


@pytest.fixture
def flows(services: Services) -> FlowService:
    return services.flows


def long_chain(count: int = 5000) -> str:
    lines = ["flow: Long", "steps:", "  - set: {id: s0, values: {v: 0}}"]
    lines += [
        f'  - set: {{id: s{index}, values: {{v: "${{s{index - 1}.v + 1}}"}}}}'
        for index in range(1, count)
    ]
    return "\n".join(lines) + "\n"


async def test_validating_a_large_definition_leaves_the_event_loop_free(
    flows: FlowService,
) -> None:
    # As the server does at start (app/collector.py): what lived before is frozen out of the
    # collector's passes, so a pass costs what this validation allocates, not what the test
    # session holds (a full collection of a long pytest session took half a second).
    gc.collect()
    gc.freeze()
    try:
        watched = await watch_loop(flows.validate(long_chain(), "yaml"))
    finally:
        gc.unfreeze()
    report, elapsed, stall = watched.result, watched.elapsed, watched.longest_stall

    assert len(report.steps) == 5000
    assert elapsed > 0.15  # enough work that running it on the loop would show
    # On the loop, the loop would stall for all of it; in a thread, only while a garbage
    # collection holds the interpreter (a fraction of it, less in the server, whose start-up
    # objects are frozen out of collections).
    assert stall < elapsed / 2


async def test_the_validation_report_is_built_off_the_event_loop(flows: FlowService) -> None:
    """Its 10,000 objects (a step reference per step, the edges) are made in the thread that
    parses: on the loop they took 16-18 ms of its own work."""
    await flows.validate(long_chain(3), "yaml")  # warmed up
    gc.disable()  # the collector's passes hold every thread, wherever they run: not measured
    try:
        watched = await watch_loop(flows.validate(long_chain(), "yaml"))
    finally:
        gc.enable()

    assert len(watched.result.edges) == 4999
    assert watched.longest_busy < 0.005  # CPU time of the loop's thread between two ticks


async def test_registering_a_large_definition_leaves_the_event_loop_free(
    services: Services,
) -> None:
    caller = await admin(services)
    registering = services.flows.register(caller, long_chain(), "yaml")

    watched = await watch_loop(registering)
    registration, elapsed, stall = watched.result, watched.elapsed, watched.longest_stall

    assert registration.created
    assert elapsed > 0.15
    assert stall < elapsed / 2
