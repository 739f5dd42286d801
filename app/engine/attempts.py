"""Running one task to its final outcome: attempts, per-attempt timeouts and retries."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.connections.manager import ConnectionManager
from app.domain.clock import utcnow
from app.domain.records import AttemptLog
from app.domain.runs import RunError, TaskKey, TaskStatus
from app.domain.storable import JsonData
from app.dsl.models import ConnectionSpec, Step
from app.dsl.sql_text import spliced_sql
from app.dsl.templates import render_all
from app.engine.limits import RunLimits, step_outputs
from app.engine.observer import NO_OBSERVER, EngineObserver
from app.engine.retries import is_retryable, retry_delay
from app.engine.scope import context_value
from app.engine.store import RunStore
from app.errors import MissingOutputError, NonRetryableError, UnknownConnectionError
from app.tasks.context import TaskContext, TaskLog
from app.tasks.registry import RegisteredTask, TaskRegistry

# An attempt without a deadline (library use, a step without `timeout`): a shared no-op, a
# third of the cost of `asyncio.timeout(None)` on a path every attempt takes.
_NO_DEADLINE: AbstractAsyncContextManager[None] = nullcontext()


@dataclass(frozen=True)
class TaskOutcome:
    key: TaskKey
    status: TaskStatus
    outputs: dict[str, Any] | None = None  # of this task (one element, for a fan-out)
    error: RunError | None = None
    step_outputs: dict[str, Any] | None = None  # a fan-out's collected outputs, when they differ
    size: int = 0  # bytes of `outputs` as stored (compact JSON)
    ends_run: bool = False  # the run cannot go on, whatever the step's on_error says
    log: AttemptLog | None = None  # what the task logged in its last attempt
    recorded: bool = False  # its task's row holds its end already (a shared fan-out's)

    @property
    def visible_outputs(self) -> dict[str, Any] | None:
        """What later expressions see as the step's outputs."""
        return self.outputs if self.step_outputs is None else self.step_outputs


@dataclass(frozen=True)
class ResumePoint:
    """Where a step's attempts resume when its run is taken over by another worker.

    An attempt interrupted mid-way runs again under its own number (execution is at least
    once per attempt); after a failed attempt, the next one waits for its retry time.
    """

    attempt: int
    not_before: datetime | None = None


class TaskRunner:
    """Runs the tasks of one run; shared by all its steps."""

    def __init__(
        self,
        *,
        run_id: str,
        flow: str,
        registry: TaskRegistry,
        store: RunStore,
        connections: ConnectionManager,
        connection_specs: Mapping[str, ConnectionSpec],
        env: Mapping[str, str],
        limits: RunLimits | None = None,
        rng: random.Random | None = None,
        observer: EngineObserver = NO_OBSERVER,
    ) -> None:
        self.run_id = run_id
        self.flow = flow
        self.registry = registry
        self.store = store
        self.connections = connections
        self.connection_specs = connection_specs
        self.env = env
        self.limits = limits or RunLimits()
        self.rng = rng
        self.observer = observer
        self._resolved_connections: dict[str, dict[str, Any]] = {}

    async def run(
        self,
        step: Step,
        index: int,
        scope: dict[str, Any],
        last_error: RunError | None = None,
        offered: Mapping[str, Any] | None = None,
        resume: ResumePoint | None = None,
    ) -> TaskOutcome:
        began = time.perf_counter()
        outcome = await self._attempts(step, index, scope, last_error, offered, resume)
        self.observer.task_settled(
            self.flow, step.task, outcome.status, time.perf_counter() - began
        )
        return outcome

    async def _attempts(
        self,
        step: Step,
        index: int,
        scope: dict[str, Any],
        last_error: RunError | None,
        offered: Mapping[str, Any] | None,
        resume: ResumePoint | None,
    ) -> TaskOutcome:
        key = TaskKey(step.id, index)
        task = self.registry.get(step.task)
        observer = self.observer
        attempt = 1
        if not task.spec.pure:  # its effect comes after the steps before it are recorded
            await self.store.committed(self.run_id)
        if resume is not None:
            attempt = resume.attempt
            if resume.not_before is not None:
                await asyncio.sleep(max(0.0, (resume.not_before - utcnow()).total_seconds()))
        while True:
            await self.store.task_started(self.run_id, key, attempt, utcnow())
            scope["context"] = context_value(self.run_id, self.flow, attempt, last_error)
            observed = observer.attempt_started(self.run_id, self.flow, key, step.task, attempt)
            log = TaskLog(self.limits.max_task_log_bytes)
            try:
                kept = await self._attempt(step, task, index, attempt, scope, offered, log)
            except asyncio.CancelledError:
                observer.attempt_ended(observed, TaskStatus.CANCELLED, retried=False)
                raise
            except Exception as exception:
                error = RunError(step.id, type(exception).__name__, _message(exception))
                if attempt >= step.retry.max_attempts or not is_retryable(exception, step.retry):
                    observer.attempt_ended(observed, TaskStatus.FAILED, retried=False)
                    return TaskOutcome(key, TaskStatus.FAILED, None, error, log=log.kept(attempt))
                observer.attempt_ended(observed, TaskStatus.FAILED, retried=True)
                delay = retry_delay(step.retry, attempt, self.rng)
                retry_at = utcnow() + timedelta(seconds=delay)
                await self.store.attempt_failed(
                    self.run_id, key, attempt, error, retry_at, log.kept(attempt)
                )
                await asyncio.sleep(delay)
                attempt += 1
            else:
                observer.attempt_ended(observed, TaskStatus.COMPLETED, retried=False)
                return TaskOutcome(
                    key,
                    TaskStatus.COMPLETED,
                    kept.value,
                    None,
                    size=kept.size,
                    log=log.kept(attempt),
                )

    async def _attempt(
        self,
        step: Step,
        task: RegisteredTask,
        index: int,
        attempt: int,
        scope: Mapping[str, Any],
        offered: Mapping[str, Any] | None,
        log: TaskLog,
    ) -> JsonData:
        """The outputs as they are kept: declared, storable, within MAX_STEP_OUTPUT_BYTES.
        Later steps see them as stored, so a run resumed from the store sees the same."""
        if task.spec.sql_text:  # validation refuses these; a definition built in code is not
            spliced = spliced_sql(step.arguments, task.spec.sql_text)
            if spliced is not None:
                raise NonRetryableError(spliced)
        arguments = render_all(step.arguments, scope)  # within one budget of built values
        timeout = self.limits.default_step_timeout if step.timeout is None else step.timeout
        context = TaskContext.for_attempt(
            self.run_id, self.flow, step.id, index, attempt, timeout=timeout, log=log
        )
        # A pure task (`set`, `log`, `fail`) awaits nothing: no deadline could stop it.
        bounded = timeout is not None and not task.spec.pure
        deadline = asyncio.timeout(timeout) if bounded else _NO_DEADLINE
        try:
            async with deadline, self._connection(step, task) as connection:
                outputs = await task.invoke(
                    arguments, context=context, connection=connection, offered=offered
                )
        except TimeoutError:
            if isinstance(deadline, asyncio.Timeout) and deadline.expired():
                raise TimeoutError(_timed_out(step, self.limits)) from None
            raise  # the task's own, whose message says what it waited for
        return step_outputs(self.limits, step.id, _declared_outputs(step, outputs))

    def _connection(self, step: Step, task: RegisteredTask) -> AbstractAsyncContextManager[Any]:
        if step.connection is None:  # `http_request` still gets a client the policy checks
            return self.connections.default_session(task.spec.connection_types)
        spec = self.connection_specs.get(step.connection)
        if spec is None:
            raise UnknownConnectionError(f"the flow declares no connection {step.connection!r}")
        params = self._resolved_connections.get(spec.name)
        if params is None:
            env_scope = {"env": self.env}
            params = {name: template.render(env_scope) for name, template in spec.params.items()}
            self._resolved_connections[spec.name] = params
        return self.connections.session(spec.name, spec.type, params)


def _declared_outputs(step: Step, outputs: dict[str, Any]) -> dict[str, Any]:
    """Only the declared outputs, when the step declares some; each must be present."""
    if step.outputs is None:
        return outputs
    missing = [name for name in step.outputs if name not in outputs]
    if missing:
        returned = ", ".join(sorted(outputs)) or "nothing"
        raise MissingOutputError(
            f"step {step.id!r} declares the output(s) {', '.join(missing)} but its task "
            f"returned {returned}"
        )
    return {name: outputs[name] for name in step.outputs}


def _timed_out(step: Step, limits: RunLimits) -> str:
    if step.timeout is not None:
        return f"attempt exceeded the step's timeout of {step.timeout:g}s"
    return (
        f"attempt exceeded {limits.default_step_timeout:g}s, the longest a step without "
        "`timeout` may run (setting MAX_STEP_TIMEOUT_SECONDS)"
    )


def _message(exception: Exception) -> str:
    return str(exception) or type(exception).__name__
