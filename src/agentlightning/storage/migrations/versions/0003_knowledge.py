"""Schema for the knowledge base (issue 4): versions, full-text and vector search.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Filled in by the feature's own change; an empty step keeps the chain linear."""


def downgrade() -> None:
    """Reverse of :func:`upgrade`."""
