"""Schema for the agent runtime (issue 3): memory, traces, leases and idempotency for tasks.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Filled in by the feature's own change; an empty step keeps the chain linear."""


def downgrade() -> None:
    """Reverse of :func:`upgrade`."""
