"""Flow versions: every version of every flow. The caller (the unit of work, or the run store)
owns the transaction.

A run starts on a version: `locate` finds it, `is_current` checks it is still the one to run,
`source_of` reads its text. `Versions` is what the services use: register, read and list
versions.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.clock import utcnow
from app.domain.formats import Format, format_named
from app.domain.records import FlowSummary, FlowVersion
from app.errors import UnknownFlowError, UnknownVersionError
from app.store.models import DEFINITIONS, FLOWS, USERS, FlowDefinitionRow
from app.store.queries import flows
from app.store.session import Db

# The table's columns, not the ORM class's: a Core select skips the ORM's compile path.
_COLUMNS = DEFINITIONS.c
LATEST = (
    select(_COLUMNS.id, _COLUMNS.version)
    .where(_COLUMNS.name == bindparam("name"))
    .order_by(_COLUMNS.version.desc())
    .limit(1)
)
GIVEN = select(_COLUMNS.id, _COLUMNS.version).where(
    _COLUMNS.name == bindparam("name"), _COLUMNS.version == bindparam("number")
)
# PostgreSQL's: the same reads as one prepared statement on the raw connection.
PG_LATEST = "SELECT id, version FROM flow_definitions WHERE name = $1 ORDER BY version DESC LIMIT 1"
PG_GIVEN = "SELECT id, version FROM flow_definitions WHERE name = $1 AND version = $2"

_BY_ID = select(_COLUMNS.name, _COLUMNS.version).where(_COLUMNS.id == bindparam("id"))
_NEWER = (
    select(_COLUMNS.id)
    .where(_COLUMNS.name == bindparam("name"), _COLUMNS.version > bindparam("version"))
    .limit(1)
)
_SOURCE = select(_COLUMNS.source, _COLUMNS.format).where(_COLUMNS.id == bindparam("id"))


async def locate(db: Db, name: str, number: int | None) -> tuple[int, int]:
    """(id, version) of the latest version or of version `number`, without its text;
    UnknownFlowError / UnknownVersionError.

    Versions never change, so callers cache what they parse by id; this is the only query the
    start of a run needs.
    """
    if number is None:
        found = (await db.execute(LATEST, {"name": name})).one_or_none()
    else:
        found = (await db.execute(GIVEN, {"name": name, "number": number})).one_or_none()
    if found is None:
        await not_found(db, name, number)
    assert found is not None
    return int(found[0]), int(found[1])


async def not_found(db: Db, name: str, number: int | None) -> None:
    """Raise the precise error for a version that was not found."""
    if number is not None and (await db.execute(LATEST, {"name": name})).first() is not None:
        raise UnknownVersionError(f"flow {name!r} has no version {number}")
    raise UnknownFlowError(f"no flow is registered under the name {name!r}")


async def is_current(db: Db, definition_id: int, *, latest_only: bool) -> bool:
    """Whether the version still exists and, with `latest_only`, is its flow's latest."""
    found = (await db.execute(_BY_ID, {"id": definition_id})).one_or_none()
    if found is None or not latest_only:
        return found is not None
    newer = await db.execute(_NEWER, {"name": found.name, "version": found.version})
    return newer.first() is None


async def source_of(db: Db, definition_id: int) -> tuple[str, Format]:
    """(source, format) of a stored version."""
    source, format = (await db.execute(_SOURCE, {"id": definition_id})).one()
    return str(source), format_named(format)


async def latest(session: AsyncSession, name: str) -> FlowDefinitionRow | None:
    statement = (
        select(FlowDefinitionRow)
        .where(FlowDefinitionRow.name == name)
        .order_by(FlowDefinitionRow.version.desc())
        .limit(1)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def version(session: AsyncSession, name: str, number: int) -> FlowDefinitionRow | None:
    statement = select(FlowDefinitionRow).where(
        FlowDefinitionRow.name == name, FlowDefinitionRow.version == number
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def find(session: AsyncSession, name: str, number: int | None = None) -> FlowDefinitionRow:
    """The latest version, or version `number`; UnknownFlowError / UnknownVersionError."""
    row = await (latest(session, name) if number is None else version(session, name, number))
    if row is None:
        await not_found(session, name, number)
    assert row is not None
    return row


class Versions:
    """The flows' versions, in one transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def latest(self, name: str) -> FlowVersion | None:
        row = await latest(self._session, name)
        return to_version(row) if row is not None else None

    async def read(self, name: str, number: int | None = None) -> FlowVersion:
        """The latest version, or version `number`, with its flow's owner and visibility;
        UnknownFlowError / UnknownVersionError."""
        row = await find(self._session, name, number)
        found = (await self._session.execute(_VERSION_DETAIL, {"id": row.id})).one()
        return to_version(row, found.created_by, found.owner, bool(found.is_public))

    async def all_of(self, name: str) -> list[FlowVersion]:
        """Every version of the flow, oldest first (without their texts' owners)."""
        statement = (
            select(FlowDefinitionRow, USERS.c.username)
            .outerjoin(USERS, USERS.c.id == FlowDefinitionRow.created_by)
            .where(FlowDefinitionRow.name == name)
            .order_by(FlowDefinitionRow.version)
        )
        return [to_version(row, creator) for row, creator in await self._session.execute(statement)]

    async def latest_of_each(self, viewer: str | None) -> list[FlowSummary]:
        """The latest version of every flow the user `viewer` may see (of every flow with
        None), by name."""
        newest = (
            select(FlowDefinitionRow.name, func.max(FlowDefinitionRow.version).label("version"))
            .group_by(FlowDefinitionRow.name)
            .subquery()
        )
        statement = (
            select(FlowDefinitionRow, USERS.c.username, FLOWS.c.is_public, FLOWS.c.description)
            .join(
                newest,
                (FlowDefinitionRow.name == newest.c.name)
                & (FlowDefinitionRow.version == newest.c.version),
            )
            .join(FLOWS, FLOWS.c.name == FlowDefinitionRow.name)
            .join(USERS, USERS.c.id == FLOWS.c.owner_id)
            .order_by(FlowDefinitionRow.name)
        )
        if viewer is not None:
            statement = statement.where(flows.visible_to(viewer))
        return [
            FlowSummary(
                row.name,
                row.version,
                description,
                row.checksum,
                row.created_at,
                owner,
                bool(public),
            )
            for row, owner, public, description in await self._session.execute(statement)
        ]

    async def add(
        self,
        *,
        name: str,
        number: int,
        definition: Any,
        source: str,
        format: Format,
        checksum: str,
        description: str,
        created_by: str,
        change_notes: str | None,
        start_spec: Any,
    ) -> FlowVersion:
        """A new version (its record names no creator: the caller knows who it is).
        `start_spec`: what starting its runs from SQL needs (`app/dsl/start_spec.py`)."""
        row = FlowDefinitionRow(
            name=name,
            version=number,
            definition=definition,
            source=source,
            format=format,
            checksum=checksum,
            description=description,
            created_at=utcnow(),
            created_by=created_by,
            change_notes=change_notes,
            start_spec=start_spec,
        )
        self._session.add(row)
        await self._session.flush()
        return to_version(row)

    async def count_created_by(self, user_id: str) -> int:
        """How many versions the user registered."""
        statement = select(func.count()).where(DEFINITIONS.c.created_by == user_id)
        return int((await self._session.execute(statement)).scalar_one())


def to_version(
    row: FlowDefinitionRow,
    created_by: str | None = None,
    owner: str | None = None,
    public: bool = False,
) -> FlowVersion:
    return FlowVersion(
        name=row.name,
        version=row.version,
        description=row.description,
        definition=row.definition,
        source=row.source,
        format=format_named(row.format),
        checksum=row.checksum,
        created_at=row.created_at,
        created_by=created_by,
        change_notes=row.change_notes,
        owner=owner,
        public=public,
    )


_OWNER = USERS.alias("owner")
_VERSION_DETAIL = (
    select(
        USERS.c.username.label("created_by"), _OWNER.c.username.label("owner"), FLOWS.c.is_public
    )
    .select_from(DEFINITIONS)
    .join(FLOWS, FLOWS.c.name == DEFINITIONS.c.name)
    .join(_OWNER, _OWNER.c.id == FLOWS.c.owner_id)
    .outerjoin(USERS, USERS.c.id == DEFINITIONS.c.created_by)
    .where(DEFINITIONS.c.id == bindparam("id"))
)
