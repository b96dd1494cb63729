"""Persistence: the database engine, ORM models, migrations, cache and event bus."""
