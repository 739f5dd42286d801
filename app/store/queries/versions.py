"""Reading the flow version a run starts: locate it, check it is still current, read its text."""

from __future__ import annotations

from sqlalchemy import bindparam, select

from app.domain.formats import Format, format_named
from app.errors import UnknownFlowError, UnknownVersionError
from app.store.models import DEFINITIONS
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
