"""Reading the audit log (admins only: the route says so)."""

from __future__ import annotations

from app.domain.records import AuditPage
from app.errors import InvalidCursorError
from app.store.unit_of_work import Store


class AuditService:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def page(self, *, limit: int = 50, cursor: str | None = None) -> AuditPage:
        """Entries newest first; `cursor` is the `next_cursor` of the previous page."""
        before = _entry_id(cursor) if cursor else None
        async with self.store.read() as tx:
            found = await tx.audit.page(limit=limit + 1, before_id=before)
        items = found[:limit]
        next_cursor = str(items[-1].id) if len(found) > limit else None
        return AuditPage(tuple(items), next_cursor)


def _entry_id(cursor: str) -> int:
    """An audit cursor is the id of the last entry seen: nothing secret, nothing to forge."""
    if not cursor.isdigit() or len(cursor) > 19:
        raise InvalidCursorError(loc=("query", "cursor"))
    return int(cursor)
