"""One vocabulary of statuses and priorities: the database refuses anything else, the code uses nothing else."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from sqlalchemy import insert, text
from sqlalchemy.exc import IntegrityError

import agentlightning
from agentlightning.core.context import AppContext
from agentlightning.storage.models import Agent, Reward, RLExperiment, Rollout, Task
from agentlightning.storage.types import utcnow
from agentlightning.vocabulary import (
    AGENT_STATUSES,
    CONSTRAINED_COLUMNS,
    EXPERIMENT_STATUSES,
    TASK_PRIORITIES,
    TASK_STATUSES,
    check_name,
)
from tests.helpers import unique

PACKAGE_ROOT = Path(agentlightning.__file__).parent


async def _rows(ctx: AppContext) -> dict[str, int]:
    """One agent, task and experiment to update; their ids by table."""
    async with ctx.db.session() as s:
        agent_id = (
            await s.execute(insert(Agent).values(name=unique("vocab"), type="t", config={}).returning(Agent.id))
        ).scalar_one()
        task_id = (
            await s.execute(insert(Task).values(task_description="x", agent_id=agent_id).returning(Task.id))
        ).scalar_one()
        experiment_id = (
            await s.execute(
                insert(RLExperiment)
                .values(name=unique("vocab"), algorithm="ppo", config={}, metrics={}, checkpoints=[])
                .returning(RLExperiment.id)
            )
        ).scalar_one()
        rollout_id = (
            await s.execute(
                insert(Rollout)
                .values(id=unique("vocab"), source="sdk", status="running", created_at=utcnow(), updated_at=utcnow())
                .returning(Rollout.id)
            )
        ).scalar_one()
        reward_id = (
            await s.execute(
                insert(Reward)
                .values(rollout_id=rollout_id, value=1.0, source="sdk", created_at=utcnow())
                .returning(Reward.id)
            )
        ).scalar_one()
        await s.commit()
    return {
        "agents": agent_id,
        "tasks": task_id,
        "rl_experiments": experiment_id,
        "rollouts": rollout_id,
        "rewards": reward_id,
    }


async def test_the_database_accepts_every_value_and_refuses_others(ctx: AppContext) -> None:
    ids = await _rows(ctx)
    for (table, column), values in CONSTRAINED_COLUMNS.items():
        for value in values:
            async with ctx.db.session() as s:
                await s.execute(
                    text(f"UPDATE {table} SET {column} = :v WHERE id = :id"), {"v": value, "id": ids[table]}
                )
                await s.commit()
        for bogus in ("bogus", values[0].upper(), ""):
            async with ctx.db.session() as s:
                with pytest.raises(IntegrityError) as refused:
                    await s.execute(
                        text(f"UPDATE {table} SET {column} = :v WHERE id = :id"), {"v": bogus, "id": ids[table]}
                    )
                    await s.commit()
                await s.rollback()
            assert check_name(table, column) in str(refused.value), (table, column, bogus)


# --- what the code writes and filters on -----------------------------------------------------------

#: ORM class (or alias) name -> the statuses its ``status`` column may hold.
_BY_MODEL = {"Agent": AGENT_STATUSES, "Task": TASK_STATUSES, "RLExperiment": EXPERIMENT_STATUSES}
_ANY_STATUS = set(AGENT_STATUSES) | set(TASK_STATUSES) | set(EXPERIMENT_STATUSES)
#: Calls whose ``status=`` keyword is not a table's status (metric labels, trace spans, ...).
_OTHER_STATUS_CALLS = {"labels", "TraceSpan", "HealthStatus", "DependencyCheck", "ComponentStatus", "dict"}
_SQL_STATUS = re.compile(r"\b(?:\w+\.)?status\s*(?:=|<>|!=)\s*'(\w*)'")
_SQL_STATUS_IN = re.compile(r"\b(?:\w+\.)?status\s+IN\s*\(([^)]*)\)", re.IGNORECASE)


def _call_name(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _constants(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return []


def _used_values() -> list[tuple[str, str, set[str] | tuple[str, ...]]]:
    """``(where, value, allowed)`` for every status/priority literal the package uses on its tables."""
    found: list[tuple[str, str, set[str] | tuple[str, ...]]] = []
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        if "migrations" in path.parts or path.name == "vocabulary.py":
            continue
        source = path.read_text()
        where = str(path.relative_to(PACKAGE_ROOT))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Call):
                name = _call_name(node)
                for kw in node.keywords:
                    if kw.arg == "status" and name not in _OTHER_STATUS_CALLS:
                        allowed = _BY_MODEL.get(name, _ANY_STATUS)
                        found += [(f"{where}:{node.lineno}", v, allowed) for v in _constants(kw.value)]
                    elif kw.arg == "priority" and name != "labels":
                        found += [(f"{where}:{node.lineno}", v, TASK_PRIORITIES) for v in _constants(kw.value)]
                if name == "transition" and len(node.args) >= 3:
                    found += [(f"{where}:{node.lineno}", v, EXPERIMENT_STATUSES) for v in _constants(node.args[2])]
                func = node.func
                if name == "in_" and isinstance(func, ast.Attribute) and isinstance(func.value, ast.Attribute):
                    column = func.value
                    if column.attr in ("status", "priority") and isinstance(column.value, ast.Name):
                        allowed = TASK_PRIORITIES if column.attr == "priority" else _BY_MODEL.get(column.value.id)
                        if allowed is None:
                            allowed = _ANY_STATUS
                        for arg in node.args:
                            found += [(f"{where}:{node.lineno}", v, allowed) for v in _constants(arg)]
            elif isinstance(node, ast.Compare) and isinstance(node.left, ast.Attribute):
                column = node.left
                if column.attr in ("status", "priority") and isinstance(column.value, ast.Name):
                    owner = column.value.id
                    if owner not in _BY_MODEL and owner not in ("cand", "other", "a", "t", "r", "p"):
                        continue  # a plain object's status (a response, a span, ...)
                    allowed = TASK_PRIORITIES if column.attr == "priority" else _BY_MODEL.get(owner, _ANY_STATUS)
                    for comparator in node.comparators:
                        found += [(f"{where}:{node.lineno}", v, allowed) for v in _constants(comparator)]
        for match in _SQL_STATUS.finditer(source):
            found.append((f"{where} (SQL)", match.group(1), _ANY_STATUS))
        for match in _SQL_STATUS_IN.finditer(source):
            for value in re.findall(r"'(\w*)'", match.group(1)):
                found.append((f"{where} (SQL)", value, _ANY_STATUS))
    return found


def test_every_status_and_priority_the_code_uses_is_in_the_vocabulary() -> None:
    used = _used_values()
    assert len(used) >= 30, used  # the scan sees the queue, the registry and the experiment service
    unknown = [(where, value) for where, value, allowed in used if value not in allowed]
    assert unknown == [], f"values outside agentlightning.vocabulary: {unknown}"
