"""A page of runs reads a page, not the table: with 100,000 runs in PostgreSQL, every query the
dashboard's run list makes (newest first, the next page, by flow, by status, both, and as a
user who sees only some flows) is an index scan that examines a small fraction of the runs.
The plans are PostgreSQL's own (`EXPLAIN ANALYZE`) on statistics as autovacuum keeps them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.runs import RunStatus
from app.store.run_store import SqlRunStore
from tests.databases import fresh_store_database, migrate_to_head, store_engine
from tests.store.contract.conftest import T0, SqlStores

RUNS = 100_000
FLOWS = 20
VIEWERS_FLOWS = 5  # of the 20: the viewer owns these, and sees no other
PAGE = 50
# Rows of flow_runs a page may examine: 5% of the table (a full scan reads all of it).
MOST_EXAMINED = RUNS // 20

# One database for the module (seeding 100,000 runs takes a second or two), so one event loop.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def seeded(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[AsyncEngine]:
    directory: Path = tmp_path_factory.mktemp("scale")
    async with fresh_store_database("postgresql", directory) as url:
        await migrate_to_head(url)
        async with store_engine(url) as engine:
            stores = SqlStores(engine)
            owner, viewer = await stores.user("owner"), await stores.user("viewer")
            for index in range(FLOWS):
                await stores.flow(f"f{index:02}", viewer if index < VIEWERS_FLOWS else owner)
            async with engine.begin() as connection:
                await connection.execute(_SEED, {"runs": RUNS, "flows": FLOWS, "t0": T0})
                await connection.execute(text("ANALYZE flow_runs"))
            yield engine


# Run i: flow f(i mod 20), one in 7 failed, one in 1000 running, created a second apart.
_SEED = text("""
INSERT INTO flow_runs (id, flow_name, definition_id, status, inputs, remaining_steps,
    created_at, created_by)
SELECT lpad(i::text, 36, '0'), d.name, d.id,
    CASE WHEN i % 1000 = 1 THEN 'running' WHEN i % 7 = 0 THEN 'failed' ELSE 'completed' END,
    '{}'::jsonb, 0, CAST(:t0 AS timestamptz) + make_interval(secs => i), 'owner'
FROM generate_series(1, :runs) AS i
JOIN flow_definitions AS d ON d.name = 'f' || lpad((i % :flows)::text, 2, '0')
""")


@pytest.fixture
def captured(seeded: AsyncEngine) -> Iterator[list[tuple[str, Any]]]:
    """The statements the store sends, with their parameters."""
    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    event.listen(seeded.sync_engine, "before_cursor_execute", capture)
    yield statements
    event.remove(seeded.sync_engine, "before_cursor_execute", capture)


def _scans_of_runs(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if plan.get("Relation Name") == "flow_runs":
        yield plan
    for child in plan.get("Plans", []):
        yield from _scans_of_runs(child)


async def _examined(engine: AsyncEngine, statement: str, parameters: Any) -> tuple[set[str], int]:
    """The kinds of scan of flow_runs in the statement's plan, and the rows they examined."""
    async with engine.connect() as connection:
        result = await connection.exec_driver_sql(
            f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", parameters
        )
        (document,) = result.scalar_one()
    scans = list(_scans_of_runs(document["Plan"]))
    kinds = {scan["Node Type"] for scan in scans}
    rows = sum(
        (scan["Actual Rows"] + scan.get("Rows Removed by Filter", 0)) * scan["Actual Loops"]
        for scan in scans
    )
    return kinds, rows


PAGES: dict[str, dict[str, Any]] = {
    "newest": {"flow": None, "status": None, "viewer": None},
    "of a flow": {"flow": "f07", "status": None, "viewer": None},
    "failed": {"flow": None, "status": RunStatus.FAILED, "viewer": None},
    "running": {"flow": None, "status": RunStatus.RUNNING, "viewer": None},
    "failed of a flow": {"flow": "f07", "status": RunStatus.FAILED, "viewer": None},
    "a user's": {"flow": None, "status": None, "viewer": "viewer"},
    "a user's failed": {"flow": None, "status": RunStatus.FAILED, "viewer": "viewer"},
}


@pytest.mark.parametrize("later", [False, True], ids=["first page", "a later page"])
@pytest.mark.parametrize("name", PAGES)
async def test_a_page_of_runs_examines_a_small_part_of_100000(
    seeded: AsyncEngine, captured: list[tuple[str, Any]], name: str, later: bool
) -> None:
    store = SqlRunStore(seeded, "reader")
    after = None
    if later:  # the cursor of a page deep in the list, as "Older runs" sends it
        after = (T0 + timedelta(seconds=RUNS // 2), "0" * 36)
    page = await store.page(limit=PAGE, after=after, value_limit=1024, **PAGES[name])
    assert len(page) == PAGE, name
    (statement, parameters) = next(s for s in captured if "FROM flow_runs" in s[0])

    kinds, examined = await _examined(seeded, statement, parameters)

    assert "Seq Scan" not in kinds, (name, kinds)
    assert examined <= MOST_EXAMINED, (name, examined)
