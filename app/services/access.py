"""Who may do what with a flow (DESIGN.md section 7), and the caches that make asking cheap.

A caller's permission on a flow comes from the flow's owner, its visibility and its shares
(`FlowAccess.permission_of`). A flow the caller may not see answers as if it did not exist
(404); one it may see but not change answers 403.

Each process caches what it read of flows' access and of credentials. Any change to users,
keys, shares or a flow's ownership is announced (`tx.access_changed()`, in the transaction
that makes it): on PostgreSQL by `NOTIFY`, which every process hears once the change commits;
SQLite has one service process (credentials, which the command line changes from a process of
its own, are not cached there). Each process then forgets everything it cached. MariaDB has no
notifications, so nothing is cached there: every request reads the store.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from cachetools import TTLCache

from app.domain.access import Caller, FlowAccess, Permission
from app.errors import FlowManagerError, ForbiddenError, NotFoundError, UnknownFlowError
from app.services.loading_cache import LoadingCache
from app.store.unit_of_work import Store

CACHE_ENTRIES = 10_000

_VERBS = {
    Permission.VIEW: "see it",
    Permission.RUN: "run it",
    Permission.EDIT: "change it",
    Permission.ADMIN: "manage it",
}


class AccessChanges:
    """Forgets this process's caches of access when access changes.

    The transaction that changes access announces it to every process
    (`tx.access_changed()`); once it has committed, call `forget` too, for this process (and
    SQLite's only one)."""

    def __init__(self) -> None:
        self._forgetters: list[Callable[[], None]] = []

    def on_change(self, forget: Callable[[], None]) -> None:
        self._forgetters.append(forget)

    def forget(self, _payload: str = "") -> None:
        for forget in self._forgetters:
            forget()


def new_cache(seconds: float) -> TTLCache[Any, Any] | None:
    """A bounded cache whose entries live `seconds`; None (no caching) for 0."""
    return TTLCache(maxsize=CACHE_ENTRIES, ttl=seconds) if seconds > 0 else None


class FlowAccessPolicy:
    def __init__(self, store: Store, *, cache_seconds: float) -> None:
        self.store = store
        # "No such flow" is never remembered: the flow may be registered next.
        self._access = LoadingCache[tuple[str, str], FlowAccess | None](
            new_cache(cache_seconds), keep=lambda found: found is not None
        )

    def forget(self) -> None:
        self._access.forget()

    async def require(
        self,
        caller: Caller,
        flow: str,
        needed: Permission,
        unseen: NotFoundError | None = None,
    ) -> None:
        """Go on when the caller has the `needed` permission on the flow. Else `unseen` (or
        UnknownFlowError) when it may not see the flow, ForbiddenError when it may.

        An acting admin may do everything with any flow: whoever asks finds out whether the
        flow exists."""
        if caller.acts_as_admin:
            return
        check(caller, flow, await self.access(flow, caller.user_id), needed, unseen)

    async def access(self, flow: str, user_id: str) -> FlowAccess | None:
        return await self._access.get((flow, user_id), functools.partial(self._read, flow, user_id))

    async def _read(self, flow: str, user_id: str) -> FlowAccess | None:
        async with self.store.read() as tx:
            return await tx.flows.access(flow, user_id)


def check(
    caller: Caller,
    flow: str,
    access: FlowAccess | None,
    needed: Permission,
    unseen: FlowManagerError | None = None,
) -> None:
    """`FlowAccessPolicy.require` on what was read of the flow (None: no such flow)."""
    permission = access.permission_of(caller) if access is not None else None
    if permission is None:
        raise unseen or UnknownFlowError(f"no flow is registered under the name {flow!r}")
    if permission < needed:
        raise ForbiddenError(
            f"you may {_VERBS[permission]} but not {_VERBS[needed]}: flow {flow!r} is not "
            f"shared with you with the {needed.label!r} permission (its owner can share it)"
        )
