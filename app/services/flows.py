"""Registering, reading, sharing and deleting flows (every version is kept).

A flow belongs to the user who registered its first version. Who may do what with it is
`FlowAccessPolicy`'s to say; lists are filtered by the store (`flows.visible_to`).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from app.domain.access import Caller, Permission
from app.domain.clock import utcnow
from app.domain.formats import Format
from app.domain.records import (
    FlowRef,
    FlowSummary,
    FlowVersion,
    Registration,
    ShareRecord,
    StepRef,
    ValidationReport,
)
from app.dsl.models import FlowDefinition
from app.dsl.start_spec import start_spec
from app.engine.executor import FlowExecutor, ParsedFlow
from app.errors import (
    ConflictError,
    DefinitionError,
    DuplicateError,
    FlowNameTakenError,
    Problem,
    QuotaExceededError,
    RequestError,
    UnknownFlowError,
    UnknownUserError,
)
from app.services.access import AccessChanges, FlowAccessPolicy, check
from app.services.schedules import ScheduleLimits, replace_declared
from app.store.unit_of_work import Store, Transaction

_REGISTRATION_ATTEMPTS = 5  # two first registrations of one name race to create its flow
MAX_CHANGE_NOTES = 10_000  # characters


@dataclass(frozen=True)
class FlowLimits:
    max_flows_per_user: int
    max_versions_per_user: int


@dataclass(frozen=True)
class FlowChange:
    """What `PATCH /flows/{name}` changes; None leaves a field as it is."""

    public: bool | None = None
    description: str | None = None
    owner: str | None = None


class FlowService:
    def __init__(
        self,
        store: Store,
        executor: FlowExecutor,
        access: FlowAccessPolicy,
        changes: AccessChanges,
        limits: FlowLimits,
        schedule_limits: ScheduleLimits | None = None,
    ) -> None:
        """`schedule_limits`: those a version's `schedules:` must keep (default: none)."""
        self.store = store
        self.executor = executor
        self.access = access
        self.changes = changes
        self.limits = limits
        self.schedule_limits = schedule_limits or ScheduleLimits(10_000, 1)
        self._schedules_declared: list[Callable[[], None]] = []

    def on_schedules_declared(self, listener: Callable[[], None]) -> None:
        """Call `listener` when a new version's `schedules:` replaced the previous ones."""
        self._schedules_declared.append(listener)

    async def validate(self, source: str | bytes, format: Format | None = None) -> ValidationReport:
        """Check a definition without saving it; DefinitionError lists every problem.

        The report (every step and edge) is built in the thread that parses, like the rest
        of the work: at 5,000 steps it is 10,000 objects, and making them on the event loop
        held it for tens of milliseconds more than anything else did."""
        return await asyncio.to_thread(self._validated, source, format)

    def _validated(self, source: str | bytes, format: Format | None) -> ValidationReport:
        return validation_report(self.executor.parse(source, format=format).definition)

    async def _parse(self, source: str | bytes, format: Format | None) -> ParsedFlow:
        """Parse off the event loop: a large definition (or a small one whose YAML aliases
        expand) takes a noticeable time to validate, and every other request would wait."""
        return await asyncio.to_thread(self.executor.parse, source, format=format)

    async def register(
        self,
        caller: Caller,
        source: str | bytes,
        format: Format | None = None,
        *,
        name: str | None = None,
        change_notes: str | None = None,
    ) -> Registration:
        """Store a new version unless the body equals the current one.

        A new name makes a new flow, owned by the caller; a new version of an existing flow
        needs the `edit` permission on it. With `name` (PUT /flows/{name}), the definition
        must carry that name.
        """
        if change_notes is not None and len(change_notes) > MAX_CHANGE_NOTES:
            raise RequestError(
                f"change notes have at most {MAX_CHANGE_NOTES} characters",
                loc=("query", "change_notes"),
            )
        parsed = await self._parse(source, format)  # refuses bytes that are not UTF-8
        text = source.decode("utf-8") if isinstance(source, bytes) else source
        definition = parsed.definition
        if name is not None and definition.name != name:
            where = ("id",) if parsed.document.data.get("start_task") else ("flow",)
            message = f"the definition is named {definition.name!r}, but the path says {name!r}"
            raise DefinitionError([Problem(where, message, "name_mismatch")])
        checksum = hashlib.sha256(text.encode("utf-8")).hexdigest()
        for _ in range(_REGISTRATION_ATTEMPTS):
            try:
                return await self._store_version(caller, parsed, text, checksum, change_notes)
            except DuplicateError:
                continue  # the flow was created meanwhile: this time it is found, and locked
        raise ConflictError(
            f"flow {definition.name!r} was being registered by others at the same moment; "
            "send the request again"
        )

    async def _store_version(
        self,
        caller: Caller,
        parsed: ParsedFlow,
        text: str,
        checksum: str,
        change_notes: str | None,
    ) -> Registration:
        definition = parsed.definition
        async with self.store.write() as tx:
            # The flow's row is locked until this version is committed: concurrent
            # registrations of one flow number their versions one at a time.
            flow = await tx.flows.lock(definition.name)
            if flow is None:
                flow = await self._new_flow(tx, caller, definition)
            current = await tx.versions.latest(definition.name)
            unchanged = current is not None and current.checksum == checksum
            if current is not None and not caller.acts_as_admin:
                # The same text again changes nothing: who may see the flow may send it. One
                # who may not see it learns only that the name is taken (names are global).
                access = await tx.flows.access(definition.name, caller.user_id)
                needed = Permission.VIEW if unchanged else Permission.EDIT
                taken = FlowNameTakenError(
                    f"a flow named {definition.name!r} exists and is not yours to change: "
                    "choose another name"
                )
                check(caller, definition.name, access, needed, unseen=taken)
            if current is not None and unchanged:
                return Registration(current, created=False)
            await self._check_version_quota(tx, caller)
            added = await tx.versions.add(
                name=definition.name,
                number=current.version + 1 if current else 1,
                definition=parsed.document.data,
                source=text,
                format=parsed.document.format,
                checksum=checksum,
                description=definition.description,
                created_by=caller.user_id or flow.owner_id,
                change_notes=change_notes,
                start_spec=start_spec(definition),
            )
            await tx.flows.change(flow.id, added.created_at, description=added.description)
            await replace_declared(
                tx,
                definition.name,
                definition.schedules,
                caller.user_id or flow.owner_id,
                self.schedule_limits,
                added.created_at,
            )
        for listener in self._schedules_declared:
            listener()
        return Registration(replace(added, created_by=caller.username), created=True)

    async def _new_flow(
        self, tx: Transaction, caller: Caller, definition: FlowDefinition
    ) -> FlowRef:
        owned = await tx.flows.count_owned(caller.user_id)
        if owned >= self.limits.max_flows_per_user:
            raise QuotaExceededError(
                f"you own {owned} flows, the most MAX_FLOWS_PER_USER allows: delete one, or "
                "ask an admin to raise the limit"
            )
        return await tx.flows.add(definition.name, caller.user_id, definition.description, utcnow())

    async def _check_version_quota(self, tx: Transaction, caller: Caller) -> None:
        registered = await tx.versions.count_created_by(caller.user_id)
        if registered >= self.limits.max_versions_per_user:
            raise QuotaExceededError(
                f"you registered {registered} versions, the most MAX_VERSIONS_PER_USER allows"
            )

    async def list_flows(self, caller: Caller) -> list[FlowSummary]:
        """The latest version of each flow the caller may see."""
        async with self.store.read() as tx:
            return await tx.versions.latest_of_each(_visibility(caller))

    async def get(self, caller: Caller, name: str, version: int | None = None) -> FlowVersion:
        await self.access.require(caller, name, Permission.VIEW)
        async with self.store.read() as tx:
            return await tx.versions.read(name, version)

    async def versions(self, caller: Caller, name: str) -> list[FlowVersion]:
        await self.access.require(caller, name, Permission.VIEW)
        async with self.store.read() as tx:
            found = await tx.versions.all_of(name)
        if not found:
            raise UnknownFlowError(f"no flow is registered under the name {name!r}")
        return found

    async def change(self, caller: Caller, name: str, change: FlowChange) -> FlowVersion:
        """Make the flow public or private, describe it, or give it to another user.

        Its description needs `edit`; visibility and ownership need `admin`."""
        needed = Permission.EDIT if change.public is None and change.owner is None else None
        await self.access.require(caller, name, needed or Permission.ADMIN)
        async with self.store.write() as tx:
            flow = await tx.flows.lock(name)
            if flow is None:
                raise UnknownFlowError(f"no flow is registered under the name {name!r}")
            owner_id = None
            if change.owner is not None:
                owner = await tx.users.find(change.owner)
                if owner is None:
                    raise UnknownUserError(f"no user is named {change.owner!r}")
                owner_id = owner.id
            now = utcnow()
            await tx.flows.change(
                flow.id,
                now,
                public=change.public,
                description=change.description,
                owner_id=owner_id,
            )
            if change.public is not None or change.owner is not None:
                await tx.audit.record(
                    actor=caller.username,
                    action="flow.change",
                    target=name,
                    at=now,
                    details={"public": change.public, "owner": change.owner},
                )
                await tx.access_changed()
        self.changes.forget()
        async with self.store.read() as tx:  # as changed: the caller may have given it away
            return await tx.versions.read(name)

    async def delete(self, caller: Caller, name: str) -> None:
        """Delete the flow, its versions and its runs."""
        await self.access.require(caller, name, Permission.ADMIN)
        async with self.store.write() as tx:
            if not await tx.flows.delete(name):
                raise UnknownFlowError(f"no flow is registered under the name {name!r}")
            await tx.audit.record(
                actor=caller.username, action="flow.delete", target=name, at=utcnow()
            )
            await tx.access_changed()
        self.changes.forget()

    # Shares.

    async def shares(self, caller: Caller, name: str) -> Sequence[ShareRecord]:
        await self.access.require(caller, name, Permission.ADMIN)
        async with self.store.read() as tx:
            flow_id = await tx.flows.id_of(name)
            if flow_id is None:
                raise UnknownFlowError(f"no flow is registered under the name {name!r}")
            return await tx.flows.shares(flow_id)

    async def share(
        self, caller: Caller, name: str, username: str, permission: Permission
    ) -> tuple[ShareRecord, bool]:
        """Share the flow with the user (or change its permission); True when new."""
        await self.access.require(caller, name, Permission.ADMIN)
        async with self.store.write() as tx:
            flow, user_id = await _flow_and_user(tx, name, username)
            if user_id == flow.owner_id:
                raise ConflictError(f"{username!r} owns flow {name!r}: it needs no share")
            now = utcnow()
            created = await tx.flows.share(flow.id, user_id, permission, now)
            await tx.audit.record(
                actor=caller.username,
                action="share.put",
                target=f"{name}/{username}",
                at=now,
                details={"permission": permission.label},
            )
            await tx.access_changed()
            found = next(s for s in await tx.flows.shares(flow.id) if s.username == username)
        self.changes.forget()
        return found, created

    async def unshare(self, caller: Caller, name: str, username: str) -> None:
        await self.access.require(caller, name, Permission.ADMIN)
        async with self.store.write() as tx:
            flow, user_id = await _flow_and_user(tx, name, username)
            if not await tx.flows.unshare(flow.id, user_id):
                raise UnknownUserError(f"flow {name!r} is not shared with {username!r}")
            await tx.audit.record(
                actor=caller.username,
                action="share.delete",
                target=f"{name}/{username}",
                at=utcnow(),
            )
            await tx.access_changed()
        self.changes.forget()


async def _flow_and_user(tx: Transaction, name: str, username: str) -> tuple[FlowRef, str]:
    """The flow, locked, and the id of the user named `username`."""
    flow = await tx.flows.lock(name)
    if flow is None:
        raise UnknownFlowError(f"no flow is registered under the name {name!r}")
    user = await tx.users.find(username)
    if user is None:
        raise UnknownUserError(f"no user is named {username!r}")
    return flow, user.id


def _visibility(caller: Caller) -> str | None:
    """Whose view lists are filtered by: None (everything) for an acting admin."""
    return None if caller.acts_as_admin else caller.user_id


def validation_report(definition: FlowDefinition) -> ValidationReport:
    steps = tuple(
        StepRef(
            step.id, step.task, tuple(sorted(definition.dependencies[step.id])), step.handler_of
        )
        for step in definition.steps
    )
    edges = tuple(
        (dependency, step.id)
        for step in definition.steps
        for dependency in sorted(definition.dependencies[step.id])
    )
    return ValidationReport(definition.name, steps, edges)
