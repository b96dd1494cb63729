"""Agent memory: per-session conversation history (windowed) and long-term notes per agent.

Both are persisted in the database (``agent_messages``, ``agent_notes``) so any worker process
can continue a session another one started. Both belong to a user (``owner``, the username that
submitted the task): a session id is chosen by clients, so it only names a conversation together
with its owner, and one user never reads another's turns or notes by reusing an id. Work without
a user (``owner`` None) sees only owner-less rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import delete, or_, select

from agentlightning.agents.llm.base import ChatMessage, Role
from agentlightning.storage.db import Database, affected_rows
from agentlightning.storage.models import AgentMessage, AgentNote

MAX_NOTE_CHARS = 4000


@dataclass(slots=True)
class Note:
    """A long-term note as shown to tools and the API."""

    id: int
    key: str | None
    content: str
    created_at: str


def _owned(column: Any, owner: str | None) -> Any:
    """``column = owner``, or ``column IS NULL`` for owner-less work."""
    return column.is_(None) if owner is None else column == owner


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class ConversationMemory:
    """The turns of one conversation session with one agent."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def window(self, agent_id: int, session_id: str, size: int, owner: str | None) -> list[ChatMessage]:
        """The last ``size`` messages of ``owner``'s session, oldest first."""
        if size <= 0:
            return []
        async with self.db.session() as s:
            rows = (
                await s.execute(
                    select(AgentMessage.role, AgentMessage.content)
                    .where(
                        AgentMessage.agent_id == agent_id,
                        _owned(AgentMessage.owner, owner),
                        AgentMessage.session_id == session_id,
                    )
                    .order_by(AgentMessage.id.desc())
                    .limit(size)
                )
            ).all()
        return [ChatMessage(role=cast(Role, role), content=content) for role, content in reversed(rows)]

    async def append(
        self,
        agent_id: int,
        session_id: str,
        turns: list[tuple[str, str]],
        owner: str | None,
        task_id: int | None = None,
    ) -> None:
        """Store ``(role, content)`` turns at the end of ``owner``'s session."""
        if not turns:
            return
        async with self.db.session() as s:
            s.add_all(
                AgentMessage(
                    agent_id=agent_id, owner=owner, session_id=session_id, role=role, content=content, task_id=task_id
                )
                for role, content in turns
            )
            await s.commit()

    async def clear(self, agent_id: int, session_id: str, owner: str | None) -> int:
        """Forget ``owner``'s session; returns the number of messages removed."""
        async with self.db.session() as s:
            result = await s.execute(
                delete(AgentMessage).where(
                    AgentMessage.agent_id == agent_id,
                    _owned(AgentMessage.owner, owner),
                    AgentMessage.session_id == session_id,
                )
            )
            await s.commit()
            return affected_rows(result)


class NoteStore:
    """Long-term notes of an agent: remembered facts it can recall in later tasks."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def remember(
        self, agent_id: int, owner: str | None, content: str, key: str | None = None, task_id: int | None = None
    ) -> Note:
        """Store a note for ``owner``; their note with the same ``key`` is replaced."""
        content = content[:MAX_NOTE_CHARS]
        async with self.db.session() as s:
            row: AgentNote | None = None
            if key:
                row = (
                    await s.execute(
                        select(AgentNote).where(
                            AgentNote.agent_id == agent_id, _owned(AgentNote.owner, owner), AgentNote.key == key
                        )
                    )
                ).scalar_one_or_none()
            if row is None:
                row = AgentNote(agent_id=agent_id, owner=owner, key=key, content=content, task_id=task_id)
                s.add(row)
            else:
                row.content = content
                row.task_id = task_id
            await s.commit()
            return _note(row)

    async def recall(self, agent_id: int, owner: str | None, query: str | None = None, limit: int = 5) -> list[Note]:
        """``owner``'s notes matching any word of ``query`` (all when empty), newest first."""
        stmt = select(AgentNote).where(AgentNote.agent_id == agent_id, _owned(AgentNote.owner, owner))
        words = [w for w in (query or "").split() if len(w) > 2][:8]
        if words:
            stmt = stmt.where(
                or_(
                    *(AgentNote.content.ilike(f"%{_escape_like(w)}%", escape="\\") for w in words),
                    *(AgentNote.key.ilike(f"%{_escape_like(w)}%", escape="\\") for w in words),
                )
            )
        async with self.db.session() as s:
            rows = (await s.execute(stmt.order_by(AgentNote.id.desc()).limit(limit))).scalars().all()
        return [_note(r) for r in rows]

    async def forget(self, agent_id: int, owner: str | None, note_id: int) -> bool:
        """Delete one of ``owner``'s notes."""
        async with self.db.session() as s:
            result = await s.execute(
                delete(AgentNote).where(
                    AgentNote.agent_id == agent_id, _owned(AgentNote.owner, owner), AgentNote.id == note_id
                )
            )
            await s.commit()
            return bool(affected_rows(result))


def _note(row: AgentNote) -> Note:
    return Note(
        id=row.id,
        key=row.key,
        content=row.content,
        created_at=row.created_at.isoformat() if row.created_at else "",
    )
