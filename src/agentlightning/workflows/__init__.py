"""Durable workflows: versioned DAG definitions (spec), the service that owns their tables, and the engine."""
