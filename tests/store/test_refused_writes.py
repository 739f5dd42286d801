"""A write the store refuses for what it holds is a final failure, not a passing one: on
MariaDB, a JSON column's CHECK refusing a document once handed its run over again and again."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import exc, text

from app.store.database import is_passing_failure
from tests.databases import fresh_store_database, store_engine


async def test_a_json_column_refusing_a_document_is_a_final_failure(tmp_path: Path) -> None:
    async with (
        fresh_store_database("mariadb", tmp_path) as url,
        store_engine(url) as engine,
        engine.connect() as connection,
    ):
        await connection.execute(text("CREATE TABLE documents (document JSON)"))
        insert = text("INSERT INTO documents (document) VALUES (:document)")

        with pytest.raises(exc.DBAPIError) as refused:
            await connection.execute(insert, {"document": "[" * 40 + "]" * 40})

    assert "CONSTRAINT" in str(refused.value)
    assert not is_passing_failure(refused.value)


def test_a_lost_mariadb_connection_is_still_a_passing_failure() -> None:
    lost = exc.OperationalError("SELECT 1", {}, Exception(2013, "Lost connection to server"))

    assert is_passing_failure(lost)
