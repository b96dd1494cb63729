"""``agentlightning sql``: set up the read-only roles of the ``sql_query`` tool's data sources."""

from __future__ import annotations

import asyncio
import secrets
from urllib.parse import quote, urlsplit, urlunsplit

import typer

app = typer.Typer(help="Data sources of the sql_query tool.", no_args_is_help=True)


@app.command("create-reader")
def create_reader(
    admin_url: str = typer.Option(..., help="PostgreSQL URL of the data source's database, as an admin role."),
    role: str = typer.Option(..., help="Name of the read-only role to create (or reset)."),
    table: list[str] = typer.Option(..., "--table", help="A table the role may read (schema.table); repeat."),
    keep_role: list[str] = typer.Option(
        [], "--keep-role", help="Roles that keep the advisory-lock functions (default: the admin role)."
    ),
    password: str = typer.Option("", help="The role's password (default: a random one)."),
) -> None:
    """Create a role that can only SELECT the given tables, and print the data source entry."""
    from agentlightning.agents.tools.sql_roles import create_reader_role

    secret = password or secrets.token_urlsafe(24)
    asyncio.run(create_reader_role(admin_url, role, secret, table, keep_roles=keep_role or None))
    parts = urlsplit(admin_url)
    host = parts.hostname or "localhost"
    netloc = f"{quote(role)}:{quote(secret)}@{host}" + (f":{parts.port}" if parts.port else "")
    url = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    typer.echo(f'{{"url": "{url}", "tables": {list(table)!r}}}'.replace("'", '"'))
