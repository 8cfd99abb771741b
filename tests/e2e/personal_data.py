"""Where a piece of personal data is still stored: every column that can hold text (text, json,
jsonb, arrays, bytea) of every table of every service's database, searched for given strings.

The broker is not searched: the events it holds age out with its retention (docs/security.md)."""

from __future__ import annotations

from sqlalchemy import text

from servicekit.db import create_engine

COLUMNS = text(
    "SELECT table_name, column_name, data_type FROM information_schema.columns"
    " WHERE table_schema = 'public' AND data_type IN"
    " ('text', 'character varying', 'json', 'jsonb', 'ARRAY', 'bytea', 'USER-DEFINED')"
    " ORDER BY table_name, column_name"
)


def _as_text(column: str, data_type: str) -> str:
    quoted = '"' + column.replace('"', '""') + '"'
    # bytea: its bytes as text with the printable ones kept (protobuf strings, JSON bodies).
    return f"encode({quoted}, 'escape')" if data_type == "bytea" else f"{quoted}::text"


async def copies_in(url: str, needles: list[str]) -> list[tuple[str, str]]:
    """(table, column) of every column of the database at `url` where a needle occurs."""
    engine = create_engine(url, pool_size=1)
    found: list[tuple[str, str]] = []
    try:
        async with engine.connect() as connection:
            columns = (await connection.execute(COLUMNS)).all()
            for table, column, data_type in columns:
                quoted_table = '"' + table.replace('"', '""') + '"'
                value = _as_text(column, data_type)
                condition = " OR ".join(f"strpos({value}, :n{i}) > 0" for i in range(len(needles)))
                hit = await connection.scalar(
                    text(f"SELECT EXISTS (SELECT 1 FROM {quoted_table} WHERE {condition})"),
                    {f"n{i}": needle for i, needle in enumerate(needles)},
                )
                if hit:
                    found.append((table, column))
    finally:
        await engine.dispose()
    return found


async def copies_everywhere(platform, needles: list[str]) -> dict[str, list[tuple[str, str]]]:  # type: ignore[no-untyped-def]
    """Per service, the columns of its database that still hold a needle (services with none left out)."""
    found = {}
    for service in platform.services:
        columns = await copies_in(platform.infra.database_url(service), needles)
        if columns:
            found[service] = columns
    return found
