"""Wiring: every long-lived object of a service process, built once and closed once.

`open` builds them; `start` makes the process a member of the cluster (its heartbeat, which
renews its runs' leases, and on PostgreSQL its notification listener); `close` drains the runs
in flight and closes everything in reverse.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from app.background import stop_task
from app.connections.manager import ConnectionManager
from app.domain.access import BOOTSTRAP_ADMIN
from app.domain.formats import format_of_path
from app.engine.environment import allowed_environment
from app.engine.executor import FlowExecutor
from app.errors import SingleProcessStoreError
from app.services.access import AccessChanges, FlowAccessPolicy
from app.services.audit import AuditService
from app.services.children import ChildRunService
from app.services.configuration import (
    connection_limits,
    definition_limits,
    destination_policy,
    run_limits,
)
from app.services.credentials import Authenticator
from app.services.event_hub import EventHub, EventLimits
from app.services.events import EventService
from app.services.flow_manager import FlowManagerService
from app.services.flows import FlowLimits, FlowService
from app.services.heartbeat import Heartbeat, new_worker_id
from app.services.keys import KeyService
from app.services.limits import RunRateLimiter
from app.services.observability import logs, traces
from app.services.observability.metrics import Metrics
from app.services.observability.observer import ServiceObserver
from app.services.passwords import Passwords
from app.services.retention import Pruner
from app.services.runner import Runner
from app.services.runs import RunService, SignalLimits
from app.services.scheduler import Scheduler
from app.services.schedules import ScheduleLimits, ScheduleService
from app.services.users import UserService
from app.services.workers import WorkerService
from app.settings import Settings
from app.store import notifications
from app.store.run_store import SqlRunStore
from app.store.unit_of_work import Store
from app.tasks.loading import load_task_modules

logger = logging.getLogger(__name__)

KEY_INSTALL_RETRY_SECONDS = 2.0


@dataclass
class Services:
    settings: Settings
    store: Store
    run_store: SqlRunStore
    connections: ConnectionManager
    executor: FlowExecutor
    flows: FlowService
    runs: RunService
    events: EventService
    runner: Runner
    flow_manager: FlowManagerService
    workers: WorkerService
    heartbeat: Heartbeat
    listener: notifications.Listener | None
    authenticator: Authenticator
    users: UserService
    keys: KeyService
    audit: AuditService
    changes: AccessChanges
    metrics: Metrics
    pruner: Pruner
    schedules: ScheduleService
    scheduler: Scheduler
    _key_installer: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, settings: Settings, *, serving: bool = True) -> Services:
        """`serving`: the process serves the API (else it is a standalone worker)."""
        registry = load_task_modules(settings.task_modules)
        store = Store.of_settings(settings)
        if settings.should_migrate_on_start:
            await store.migrate()
        # With callers to tell apart, flows stay off the service's own network by default.
        refused = settings.refuses_private_networks(serving=serving)
        connections = ConnectionManager(
            policy=destination_policy(settings, deny_private_networks=refused),
            limits=connection_limits(settings),
        )
        worker_id = new_worker_id()
        logs.set_worker(worker_id)
        run_store = store.runs(worker_id)
        metrics = Metrics(store, settings.heartbeat_seconds)
        tracing = traces.tracing_of(settings)
        executor = FlowExecutor(
            registry,
            store=run_store,
            connections=connections,
            env=allowed_environment(
                settings.flow_env_allowlist,
                settings.flow_env_file,
                file_overrides=settings.flow_env_file_overrides,
            ),
            limits=run_limits(settings),
            definition_limits=definition_limits(settings),
            observer=ServiceObserver(metrics, tracing),
        )
        changes = AccessChanges()
        access = FlowAccessPolicy(
            store, cache_seconds=_cache_seconds(store, settings, changed_by_cli=False)
        )
        authenticator = Authenticator(
            store,
            required=settings.auth_enabled,
            cache_seconds=_cache_seconds(store, settings, changed_by_cli=True),
            flush_seconds=settings.key_usage_flush_seconds,
        )
        changes.on_change(access.forget)
        changes.on_change(authenticator.forget)
        schedule_limits = ScheduleLimits(
            settings.max_schedules_per_flow, settings.min_schedule_interval_seconds
        )
        flows = FlowService(
            store,
            executor,
            access,
            changes,
            FlowLimits(settings.max_flows_per_user, settings.max_versions_per_user),
            schedule_limits,
        )
        runner = Runner(
            run_store,
            executor,
            lease_seconds=settings.lease_seconds,
            metrics=metrics,
            tracing=tracing,
            element_batch=settings.element_batch,
        )
        runs = RunService(
            run_store,
            runner,
            access,
            RunRateLimiter(settings.runs_per_minute),
            owner=worker_id,
            cursor_secret=settings.secret_key.get_secret_value().encode() or None,
            tracing=tracing,
            metrics=metrics,
            signal_limits=SignalLimits(
                settings.max_signals_per_run, settings.max_signal_payload_bytes
            ),
            max_batch_runs=settings.max_batch_runs,
        )
        # The engine starts child runs through the service's runs (a `flow` step).
        executor.children = ChildRunService(runs, run_store, settings.max_subflow_depth)
        schedules = ScheduleService(store, runner, access, schedule_limits)
        scheduler = Scheduler(
            store,
            runs,
            metrics,
            poll_seconds=settings.schedule_poll_seconds,
            batch=settings.schedule_batch,
        )
        schedules.on_change(scheduler.wake)
        flows.on_schedules_declared(scheduler.wake)
        limits = EventLimits.of_settings(settings)
        hub = EventHub(run_store, limits)
        run_store.on_events(hub.wake)
        passwords = Passwords()
        heartbeat = Heartbeat(
            store,
            settings.heartbeat_seconds,
            worker_id,
            on_beat=runner.renew_leases,
            claims_runs=settings.embedded_worker or not serving,
        )
        listener = None
        if store.notifies:
            handlers: dict[str, notifications.Handler] = {
                notifications.RUNS_QUEUED: lambda _: runner.work_available.set(),
                notifications.ELEMENTS_QUEUED: lambda _: runner.elements.wake(),
                notifications.RUN_CANCELLED: runner.stop_local,
                notifications.ACCESS_CHANGED: changes.forget,
                notifications.WORKERS_CHANGED: lambda _: heartbeat.recount(),
            }
            if serving:  # only the API streams events: a worker need not hear of them
                handlers[notifications.RUN_EVENTS] = hub.notified
            listener = store.listener(handlers)
        return cls(
            settings=settings,
            store=store,
            run_store=run_store,
            connections=connections,
            executor=executor,
            flows=flows,
            runs=runs,
            events=EventService(runs, run_store, hub, limits),
            runner=runner,
            flow_manager=FlowManagerService(flows, runs, settings.max_wait_seconds),
            workers=WorkerService(store),
            heartbeat=heartbeat,
            listener=listener,
            authenticator=authenticator,
            users=UserService(store, passwords, changes),
            keys=KeyService.of_settings(store, passwords, changes, settings),
            audit=AuditService(store),
            changes=changes,
            metrics=metrics,
            pruner=Pruner(
                store,
                metrics,
                default_days=settings.run_retention_days,
                interval=settings.retention_interval_seconds,
                batch=settings.retention_batch,
            ),
            schedules=schedules,
            scheduler=scheduler,
        )

    async def start(self) -> None:
        """Join the cluster: register and beat, listen for notifications, prune finished runs
        past their retention (whichever process gets the lock), start the runs of due
        schedule ticks (whichever process locks them), and on a single-process store
        resume the runs this process left running when it stopped."""
        if self.settings.is_sqlite:
            await self._refuse_a_second_process()
        await self.heartbeat.start()
        await self.pruner.start()
        await self.scheduler.start()
        if self.listener is not None:
            await self.listener.start()
        if self.settings.is_sqlite:
            await self.runner.resume_interrupted()

    async def start_authentication(self) -> None:
        """Who callers without credentials act as when authentication is off, and the
        ADMIN_API_KEY (installed once, as soon as the store answers)."""
        settings = self.settings
        if not settings.auth_enabled:
            logger.warning(
                "AUTHENTICATION IS OFF: the service listens on %s only, and every caller "
                "without a key acts as the local admin %r. Set AUTH=on (or listen on another "
                "address) before anyone else can reach it.",
                settings.host,
                BOOTSTRAP_ADMIN,
            )
        await self.authenticator.start(None if settings.auth_enabled else self.users.local_admin)
        if settings.admin_api_key is not None:
            secret = settings.admin_api_key.get_secret_value()
            self._key_installer = asyncio.create_task(
                self._install_admin_key(secret), name="admin-api-key"
            )

    async def _install_admin_key(self, secret: str) -> None:
        while True:
            try:
                await self.keys.install(await self.users.local_admin(), secret)
            except Exception as error:  # the store does not answer yet: try again
                logger.warning("installing ADMIN_API_KEY failed (%r); retrying", error)
                await asyncio.sleep(KEY_INSTALL_RETRY_SECONDS)
            else:
                return

    async def _refuse_a_second_process(self) -> None:
        """SQLite is single-process: another live process already runs this store's runs."""
        async with self.store.read() as tx:
            registered = await tx.workers.all()
        for worker in registered:
            if worker.hostname == self.heartbeat.hostname and _process_alive(worker.pid):
                raise SingleProcessStoreError(
                    f"process {worker.pid} already runs the runs of this SQLite store "
                    f"({self.settings.database_url}); SQLite is single-process: use "
                    "PostgreSQL to run several API or worker processes"
                )

    async def register_flow_files(self) -> None:
        """Register the FLOW_FILES definitions, as the FlowLang server serves its flow.yaml.

        They belong to the local admin (`admin`), who may share them or make them public."""
        if not self.settings.flow_files:
            return
        admin = await self.users.local_admin()
        for name in self.settings.flow_files:
            path = Path(name)
            source = await asyncio.to_thread(path.read_text, encoding="utf-8")
            await self.flows.register(
                admin, source, format_of_path(name), change_notes=f"FLOW_FILES: {name}"
            )

    async def store_reachable(self) -> bool:
        """Whether the store answers a trivial query within 5 seconds (GET /ready)."""
        return await self.store.reachable()

    async def close(self, grace: float = 10) -> None:
        if self.listener is not None:
            await self.listener.stop()
        await self.pruner.stop()
        await self.scheduler.stop()
        await self.events.aclose()
        await self.runner.shutdown(grace)
        await stop_task(self._key_installer)
        await self.authenticator.close()
        await self.heartbeat.stop()
        await self.run_store.aclose()
        await self.connections.aclose()
        await self.store.close()
        self.metrics.close()
        self.runner.tracing.close()


def _cache_seconds(store: Store, settings: Settings, *, changed_by_cli: bool) -> float:
    """How long to cache what access rules say: only where every change is heard at once.

    PostgreSQL notifies every process. On SQLite the service is the only process, but the
    command line (`keys revoke`) changes credentials from another one, which it cannot
    notify: credentials are not cached there. MariaDB has no notifications: nothing is.
    """
    hears_every_change = store.dialect == "postgresql" or (
        store.dialect == "sqlite" and not changed_by_cli
    )
    return settings.auth_cache_seconds if hears_every_change else 0


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True
