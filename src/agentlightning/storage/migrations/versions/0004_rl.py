"""Schema for the RL orchestrator (issue 5): metric history, checkpoints and leases.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Filled in by the feature's own change; an empty step keeps the chain linear."""


def downgrade() -> None:
    """Reverse of :func:`upgrade`."""
