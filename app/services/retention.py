"""`Pruner`: deletes finished runs past their retention (DESIGN.md section 9), on a timer, in
every process that runs runs (an API process and `python -m app worker`); one of them at a time
does it (`Store.try_lock`), the others skip the round.

A round reads the latest version of every flow, and with it the flow's `retention:` (the
latest version's, for all of the flow's runs, whichever version they ran), falling back to
RUN_RETENTION_DAYS for `days`. For each flow that keeps fewer than all its runs, it finds the
creation time before which its finished runs go (the later of "`days` ago" and the creation of
its `max_runs`-th newest finished run), then deletes them oldest first, `batch` runs per
transaction (fewer when they are big: `queries/retention.py`), until a batch finds no more.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from app.background import stop_task
from app.domain.clock import utcnow
from app.domain.retention import Retention
from app.services.observability.metrics import Metrics
from app.store.unit_of_work import Store

logger = logging.getLogger(__name__)

LOCK_NAME = "flow_manager.retention"


@dataclass(frozen=True)
class PruneRound:
    """What one round did: runs deleted, and the transactions that deleted them."""

    deleted: int = 0
    batches: int = 0


class Pruner:
    def __init__(
        self,
        store: Store,
        metrics: Metrics | None,
        *,
        default_days: int | None,
        interval: float,
        batch: int,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.default_days = default_days
        self.interval = interval
        self.batch = batch
        self.clock = clock
        # Versions never change: what each one says of retention is read once.
        self._retentions: dict[int, Retention] = {}
        self._loop: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Prune every `interval` seconds, the first time one interval from now."""
        self._loop = asyncio.create_task(self._prune_forever(), name="run-retention")

    async def stop(self) -> None:
        await stop_task(self._loop)
        self._loop = None

    async def prune(self) -> PruneRound | None:
        """One round; None when another process holds the lock (it prunes this round)."""
        async with self.store.try_lock(LOCK_NAME) as held:
            if not held:
                return None
            return await self._prune_all()

    async def _prune_all(self) -> PruneRound:
        now = self.clock()
        total = PruneRound()
        for flow, retention in await self._retentions_of_flows():
            before = await self._cutoff(flow, retention, now)
            if before is not None:
                done = await self._prune_flow(flow, before)
                total = PruneRound(total.deleted + done.deleted, total.batches + done.batches)
        if total.deleted:
            logger.info("retention: %d finished runs deleted", total.deleted)
        return total

    async def _retentions_of_flows(self) -> list[tuple[str, Retention]]:
        """Each flow's retention (its latest version's, with RUN_RETENTION_DAYS where it names
        no days), leaving out the flows that keep every run."""
        async with self.store.read() as tx:
            latest = await tx.pruning.latest_versions()
            unread = {definition_id for _, definition_id in latest} - self._retentions.keys()
            documents = await tx.pruning.documents(unread)
        # Only the latest versions are asked about again: the others' entries are dropped.
        kept = {definition_id for _, definition_id in latest}
        self._retentions = {
            definition_id: retention
            for definition_id, retention in self._retentions.items()
            if definition_id in kept
        }
        for definition_id, document in documents.items():
            self._retentions[definition_id] = Retention.of_document(document)
        found = [
            (flow, self._retentions.get(definition_id, Retention()).or_days(self.default_days))
            for flow, definition_id in latest
        ]
        return [(flow, retention) for flow, retention in found if not retention.keeps_everything]

    async def _cutoff(self, flow: str, retention: Retention, now: datetime) -> datetime | None:
        """The flow's finished runs created before this go; None: none go."""
        cutoffs = [cutoff for cutoff in (retention.age_cutoff(now),) if cutoff is not None]
        if retention.max_runs is not None:
            async with self.store.read() as tx:
                kept_from = await tx.pruning.newest_kept(flow, retention.max_runs)
            if kept_from is not None:
                cutoffs.append(kept_from)
        return max(cutoffs, default=None)

    async def _prune_flow(self, flow: str, before: datetime) -> PruneRound:
        deleted = batches = 0
        while True:
            async with self.store.write() as tx:
                batch = await tx.pruning.delete_batch(flow, before, self.batch)
            batches += 1
            deleted += batch.deleted
            if batch.deleted and self.metrics is not None:
                self.metrics.pruned(flow, batch.deleted)
            if not batch.more:
                return PruneRound(deleted, batches)

    async def _prune_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.prune()
            except Exception:  # a database hiccup must not stop retention
                logger.exception("pruning finished runs failed")
