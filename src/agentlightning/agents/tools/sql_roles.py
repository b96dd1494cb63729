"""Provisioning of the least-privilege PostgreSQL roles ``sql_query`` data sources connect as.

``agentlightning sql create-reader`` (or :func:`create_reader_role`) run by an admin against the
data source's database creates a ``LOGIN`` role that

* is not a superuser and cannot create roles or databases, bypass row security or replicate;
* defaults to read-only transactions and a statement timeout;
* may ``CONNECT`` to the database, use the schemas of the listed tables and ``SELECT`` exactly
  those tables (grants it held before on other tables of those schemas are revoked);

and revokes ``PUBLIC``'s right to execute the advisory-lock functions in that database (granting it
back to the roles named in ``keep_roles``, by default the admin running the command), so a query
cannot hold locks the platform or other applications rely on. The platform's own tables are never
granted.
"""

from __future__ import annotations

import asyncpg

from agentlightning.agents.tools.sql_query import _split, check_tables

ADVISORY_FUNCTIONS = [
    f"{name}({args})"
    for name in (
        "pg_advisory_lock",
        "pg_advisory_lock_shared",
        "pg_try_advisory_lock",
        "pg_try_advisory_lock_shared",
        "pg_advisory_xact_lock",
        "pg_advisory_xact_lock_shared",
        "pg_try_advisory_xact_lock",
        "pg_try_advisory_xact_lock_shared",
    )
    for args in ("bigint", "integer, integer")
]


def _dsn(url: str) -> str:
    for prefix in ("postgresql+asyncpg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


async def create_reader_role(
    admin_url: str,
    role: str,
    password: str,
    tables: list[str],
    *,
    statement_timeout_ms: int = 5000,
    keep_roles: list[str] | None = None,
) -> None:
    """Create (or reset) ``role`` so that it can only read ``tables`` of the admin URL's database."""
    check_tables(tables)
    conn = await asyncpg.connect(_dsn(admin_url))
    try:
        async with conn.transaction():
            q = conn.fetchval
            exists = await q("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
            verb = "ALTER" if exists else "CREATE"
            await conn.execute(
                await q(
                    f"SELECT format('{verb} ROLE %I LOGIN PASSWORD %L NOSUPERUSER NOCREATEDB NOCREATEROLE "
                    "NOINHERIT NOBYPASSRLS NOREPLICATION CONNECTION LIMIT 10', $1::text, $2::text)",
                    role,
                    password,
                )
            )
            await conn.execute(
                await q("SELECT format('ALTER ROLE %I SET default_transaction_read_only = on', $1::text)", role)
            )
            await conn.execute(
                await q(
                    "SELECT format('ALTER ROLE %I SET statement_timeout = %L', $1::text, $2::text)",
                    role,
                    str(statement_timeout_ms),
                )
            )
            database = await q("SELECT current_database()")
            await conn.execute(
                await q("SELECT format('GRANT CONNECT ON DATABASE %I TO %I', $1::text, $2::text)", database, role)
            )
            for schema in sorted({_split(t)[0] for t in tables}):
                await conn.execute(
                    await q(
                        "SELECT format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM %I', $1::text, $2::text)",
                        schema,
                        role,
                    )
                )
                await conn.execute(
                    await q("SELECT format('GRANT USAGE ON SCHEMA %I TO %I', $1::text, $2::text)", schema, role)
                )
            for table in tables:
                schema, name = _split(table)
                await conn.execute(
                    await q(
                        "SELECT format('GRANT SELECT ON TABLE %I.%I TO %I', $1::text, $2::text, $3::text)",
                        schema,
                        name,
                        role,
                    )
                )
            keep = keep_roles if keep_roles is not None else [await q("SELECT current_user")]
            for function in ADVISORY_FUNCTIONS:
                await conn.execute(f"REVOKE EXECUTE ON FUNCTION {function} FROM PUBLIC")
                for other in keep:
                    await conn.execute(
                        await q(f"SELECT format('GRANT EXECUTE ON FUNCTION {function} TO %I', $1::text)", other)
                    )
    finally:
        await conn.close()


async def drop_reader_role(admin_url: str, role: str) -> None:
    """Remove a reader role and its grants in the admin URL's database."""
    conn = await asyncpg.connect(_dsn(admin_url))
    try:
        if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
            await conn.execute(await conn.fetchval("SELECT format('DROP OWNED BY %I', $1::text)", role))
            await conn.execute(await conn.fetchval("SELECT format('DROP ROLE %I', $1::text)", role))
    finally:
        await conn.close()
