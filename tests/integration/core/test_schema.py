"""The migrations build the spec's tables, columns and indexes on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from agentlightning.core.context import AppContext
from agentlightning.storage.models import Base

SPEC_COLUMNS = {
    "agents": {
        "id",
        "name",
        "type",
        "description",
        "config",
        "status",
        "created_at",
        "updated_at",
        "performance_metrics",
        "last_activity",
    },
    "knowledge_items": {
        "id",
        "title",
        "content",
        "category",
        "tags",
        "metadata",
        "created_at",
        "updated_at",
        "created_by",
        "version",
    },
    "tasks": {
        "id",
        "task_description",
        "agent_id",
        "status",
        "priority",
        "result",
        "created_at",
        "started_at",
        "completed_at",
        "execution_time_ms",
        "error_message",
    },
    "rl_experiments": {
        "id",
        "name",
        "algorithm",
        "config",
        "status",
        "agent_id",
        "start_time",
        "end_time",
        "metrics",
        "checkpoints",
        "created_at",
    },
}
SPEC_INDEXES = {
    "agents": {"idx_agents_type", "idx_agents_status", "idx_agents_last_activity"},
    "knowledge_items": {"idx_knowledge_category"},
    "tasks": {"idx_tasks_status", "idx_tasks_agent_id", "idx_tasks_created_at"},
    "rl_experiments": {"idx_rl_experiments_status", "idx_rl_experiments_agent_id"},
}


async def test_spec_tables_columns_and_indexes(ctx: AppContext, backend: str) -> None:
    async with ctx.db.engine.connect() as conn:

        def _inspect(sync_conn):  # type: ignore[no-untyped-def]
            inspector = inspect(sync_conn)
            return {
                table: (
                    {c["name"] for c in inspector.get_columns(table)},
                    {i["name"] for i in inspector.get_indexes(table)},
                )
                for table in SPEC_COLUMNS
            }

        found = await conn.run_sync(_inspect)
        for table, columns in SPEC_COLUMNS.items():
            assert columns <= found[table][0], (table, columns - found[table][0])
            assert SPEC_INDEXES[table] <= found[table][1], (table, SPEC_INDEXES[table] - found[table][1])
        if backend == "postgres":
            rows = (
                await conn.execute(
                    text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'knowledge_items'")
                )
            ).all()
            definitions = dict(rows)
            assert "USING gin (tags)" in definitions["idx_knowledge_tags"]
            assert "to_tsvector('english'::regconfig, content)" in definitions["idx_knowledge_content"]
            types = dict(
                (
                    await conn.execute(
                        text(
                            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'agents'"
                        )
                    )
                ).all()
            )
            assert types["config"] == "jsonb" and types["performance_metrics"] == "jsonb"
            tag_type = (
                await conn.execute(
                    text(
                        "SELECT data_type FROM information_schema.columns WHERE table_name='knowledge_items' AND column_name='tags'"
                    )
                )
            ).scalar()
            assert tag_type == "ARRAY"


#: What the migrations build that no model declares: the knowledge search structures (SQLite's FTS5
#: tables; PostgreSQL's generated ``search_vector`` column and its GIN indexes) and partial indexes
#: of the queue and the RL manager, written in SQL.
MIGRATION_ONLY = {
    "knowledge_fts",
    "knowledge_fts_config",
    "knowledge_fts_data",
    "knowledge_fts_docsize",
    "knowledge_fts_idx",
    "search_vector",
    "idx_knowledge_content",
    "idx_knowledge_search_vector",
    "idx_knowledge_tags",
    "idx_tasks_agent_active",
    "idx_rl_experiments_lease",
    "idx_rl_experiments_queue",
}


async def test_the_models_match_the_migrations(ctx: AppContext, backend: str) -> None:
    """Every table, column (with its type) and index the models declare is what the migrations
    built, and nothing else is there but :data:`MIGRATION_ONLY`.

    Nullability is left out: many columns the models declare NOT NULL (the platform always writes
    them) are nullable in the tables, as the specification's DDL has them.
    """

    def compare(sync_conn):  # type: ignore[no-untyped-def]
        return compare_metadata(MigrationContext.configure(sync_conn), Base.metadata)

    async with ctx.db.engine.connect() as conn:
        differences = await conn.run_sync(compare)
    unexpected = []
    for difference in differences:
        if isinstance(difference, list):  # changes of one column
            if all(change[0] == "modify_nullable" for change in difference):
                continue
        elif difference[0] in ("remove_table", "remove_index") and difference[1].name in MIGRATION_ONLY:
            continue
        elif difference[0] == "remove_column" and difference[3].name in MIGRATION_ONLY:
            continue
        unexpected.append(difference)
    assert not unexpected, unexpected
