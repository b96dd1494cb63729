"""SDK/gateway ingest, rewards, filters, visibility and agent resources over the API, on both backends."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from agentlightning.core.context import AppContext
from agentlightning.rollouts.schemas import RolloutFilters
from agentlightning.rollouts.service import RolloutService
from tests.helpers import unique
from tests.integration.agents.helpers import create_agent

Login = Callable[[str], Awaitable[dict[str, str]]]


def _span(span_id: str, kind: str = "llm", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"span_id": span_id, "kind": kind, "name": f"{kind}-call"}
    if kind == "llm":
        body |= {
            "input": {"messages": [{"role": "user", "content": "2+2?"}]},
            "output": {"content": "4"},
            "model": "gpt-test",
            "prompt_tokens": 5,
            "completion_tokens": 1,
            "latency_ms": 12.5,
        }
    return body | extra


async def _ingest(client: httpx.AsyncClient, headers: dict[str, str], *rollouts: dict[str, Any]) -> httpx.Response:
    return await client.post("/api/v2/rollouts", json={"rollouts": list(rollouts)}, headers=headers)


async def test_ingest_is_idempotent_and_rewards_attach(client: httpx.AsyncClient, login: Login) -> None:
    developer = await login("developer")
    user = await login("user")
    agent = await create_agent(client, developer, unique("sdk"))
    rid = unique("run")
    first = await _ingest(
        client,
        user,
        {
            "id": rid,
            "agent_name": agent["name"],
            "status": "running",
            "input": {"messages": [{"role": "user", "content": "2+2?"}]},
            "spans": [_span("s1"), _span("s2", "tool", input={"arguments": {"x": 1}}, output={"y": 2})],
            "rewards": [{"value": 0.3, "span_id": "s2", "name": "step"}],
        },
    )
    assert first.status_code == 200, first.text
    assert first.json()["data"] == {"ids": [rid], "created": 1, "spans_added": 2, "rewards_added": 1}
    # The same spans again (a retried request) are skipped; a new one is appended; it finishes.
    again = await _ingest(
        client,
        user,
        {
            "id": rid,
            "status": "completed",
            "output": {"role": "assistant", "content": "4"},
            "spans": [_span("s1"), _span("s2", "tool"), _span("s3")],
            "rewards": [{"value": 1.0, "name": "final"}],
        },
    )
    assert again.status_code == 200, again.text
    assert again.json()["data"] == {"ids": [rid], "created": 0, "spans_added": 1, "rewards_added": 1}
    rollout = (await client.get(f"/api/v2/rollouts/{rid}", headers=user)).json()["data"]
    assert rollout["status"] == "completed" and rollout["ended_at"] and rollout["agent_id"] == agent["id"]
    assert rollout["reward"] == 1.0 and rollout["source"] == "sdk"
    assert [s["span_id"] for s in rollout["spans"]].count("s1") == 1 and len(rollout["spans"]) == 3
    assert {(r["span_id"], r["value"], r["source"]) for r in rollout["rewards"]} == {
        ("s2", 0.3, "sdk"),
        (None, 1.0, "sdk"),
    }
    # A reward through the endpoint, on a span and on the whole rollout.
    added = await client.post(f"/api/v2/rollouts/{rid}/rewards", json={"value": 0.7, "span_id": "s3"}, headers=user)
    assert added.status_code == 201 and added.json()["data"]["span_id"] == "s3"
    assert (await client.get(f"/api/v2/rollouts/{rid}", headers=user)).json()["data"]["reward"] == 1.0
    added = await client.post(f"/api/v2/rollouts/{rid}/rewards", json={"value": 0.2, "comment": "meh"}, headers=user)
    assert added.status_code == 201
    assert (await client.get(f"/api/v2/rollouts/{rid}", headers=user)).json()["data"]["reward"] == 0.2
    unknown_span = await client.post(
        f"/api/v2/rollouts/{rid}/rewards", json={"value": 1, "span_id": "zz"}, headers=user
    )
    assert unknown_span.status_code == 404 and unknown_span.json()["error"]["code"] == "SPAN_NOT_FOUND"
    # A server-chosen id.
    anon = await _ingest(client, user, {"spans": [_span(unique("sp")[:32])]})
    assert anon.status_code == 200 and len(anon.json()["data"]["ids"][0]) == 32


@pytest.mark.parametrize(
    "rollout",
    [
        {"id": "task-1"},  # reserved for task runs
        {"id": "has space"},
        {"id": "x" * 65},
        {"source": "task"},
        {"spans": [{"span_id": "a", "kind": "banana", "name": "x"}]},
        {"spans": [{"span_id": "a" * 33, "kind": "llm", "name": "x"}]},
        {"spans": [{"span_id": "a", "kind": "llm", "name": "x", "prompt_tokens": -1}]},
        {"spans": [_span(f"s{i}") for i in range(201)]},
        {"rewards": [{"value": float("1e300")}]},
        {"rewards": [{"value": "high"}]},
        {"agent_id": 1, "agent_name": "both"},
        {"metadata": {"k": "\u0000"}},
        {"unknown": 1},
    ],
)
async def test_ingest_refuses_invalid_rollouts(
    client: httpx.AsyncClient, login: Login, rollout: dict[str, Any]
) -> None:
    user = await login("user")
    response = await _ingest(client, user, rollout)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"


async def test_ingest_bounds_and_unknown_agent(client: httpx.AsyncClient, login: Login) -> None:
    user = await login("user")
    too_many = await client.post("/api/v2/rollouts", json={"rollouts": [{}] * 101}, headers=user)
    assert too_many.status_code == 422
    empty = await client.post("/api/v2/rollouts", json={"rollouts": []}, headers=user)
    assert empty.status_code == 422
    unknown = await _ingest(client, user, {"agent_name": unique("ghost")})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "AGENT_NOT_FOUND"
    # One id twice in a batch: the second part appends to the first (a long rollout in parts).
    rid = unique("parts")
    parts = await _ingest(
        client,
        user,
        {"id": rid, "status": "running", "spans": [_span(unique("p")[:32])]},
        {"id": rid, "status": "completed", "spans": [_span(unique("q")[:32])], "rewards": [{"value": 0.5}]},
    )
    assert parts.status_code == 200, parts.text
    assert parts.json()["data"] == {"ids": [rid, rid], "created": 1, "spans_added": 2, "rewards_added": 1}
    detail = (await client.get(f"/api/v2/rollouts/{rid}", headers=user)).json()["data"]
    assert detail["status"] == "completed" and len(detail["spans"]) == 2 and detail["reward"] == 0.5
    # A long conversation fits (a span's input may hold up to 1 MiB); more is refused with a 413.
    long_messages = {"messages": [{"role": "user", "content": "x" * 200_000}]}
    fits = await _ingest(client, user, {"spans": [_span(unique("long")[:32], input=long_messages)]})
    assert fits.status_code == 200, fits.text
    huge = {"messages": [{"role": "user", "content": "x" * 1_100_000}]}
    refused = await _ingest(client, user, {"spans": [_span(unique("huge")[:32], input=huge)]})
    assert refused.status_code == 413 and refused.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    anonymous = await client.post("/api/v2/rollouts", json={"rollouts": [{}]})
    assert anonymous.status_code == 401


async def test_a_plain_user_sees_and_touches_only_their_own_rollouts(client: httpx.AsyncClient, login: Login) -> None:
    alice, bob, developer = await login("user"), await login("user"), await login("developer")
    rid = unique("alice")
    assert (await _ingest(client, alice, {"id": rid, "spans": [_span(unique("a")[:32])]})).status_code == 200
    # Bob cannot read it, reward it, append to it (or take its id), nor find it in a listing.
    assert (await client.get(f"/api/v2/rollouts/{rid}", headers=bob)).status_code == 404
    reward = await client.post(f"/api/v2/rollouts/{rid}/rewards", json={"value": 1}, headers=bob)
    assert reward.status_code == 404
    append = await _ingest(client, bob, {"id": rid, "spans": [_span(unique("b")[:32])], "rewards": [{"value": 1}]})
    assert append.status_code == 409 and append.json()["error"]["code"] == "ROLLOUT_ID_TAKEN"
    listed = (await client.get("/api/v2/rollouts", params={"page_size": 500}, headers=bob)).json()["data"]
    assert rid not in [r["id"] for r in listed["items"]]
    bob_name = await _whoami(client, bob)
    assert all(r["owner"] == bob_name for r in listed["items"])
    detail = (await client.get(f"/api/v2/rollouts/{rid}", headers=alice)).json()["data"]
    assert detail["rewards"] == [] and len(detail["spans"]) == 1
    # A developer sees every rollout.
    assert (await client.get(f"/api/v2/rollouts/{rid}", headers=developer)).status_code == 200
    # Task rollout ids cannot be claimed through ingest.
    taken = await _ingest(client, alice, {"id": "task-1"})
    assert taken.status_code == 422


async def _whoami(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    return str((await client.get("/auth/profile", headers=headers)).json()["data"]["username"])


async def test_filters(client: httpx.AsyncClient, login: Login, ctx: AppContext) -> None:
    developer = await login("developer")
    user = await login("user")
    one = await create_agent(client, developer, unique("f1"))
    two = await create_agent(client, developer, unique("f2"))
    batch = [
        {"id": unique("r"), "agent_id": one["id"], "rewards": [{"value": 0.9}]},
        {"id": unique("r"), "agent_id": one["id"], "status": "failed", "rewards": [{"value": 0.1}]},
        {"id": unique("r"), "agent_id": two["id"], "source": "gateway", "status": "running"},
    ]
    assert (await _ingest(client, user, *batch)).status_code == 200
    ids = [b["id"] for b in batch]

    async def listed(**params: Any) -> list[str]:
        response = await client.get("/api/v2/rollouts", params=params, headers=user)
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()["data"]["items"] if r["id"] in ids]

    assert sorted(await listed()) == sorted(ids)  # one batch: one created_at
    assert sorted(await listed(agent_id=one["id"])) == sorted(ids[:2])
    assert await listed(source="gateway") == [ids[2]]
    assert await listed(status="failed") == [ids[1]]
    assert await listed(min_reward=0.5) == [ids[0]]
    assert await listed(max_reward=0.5) == [ids[1]]
    assert sorted(await listed(min_reward=0.0, max_reward=1.0)) == sorted(ids[:2])
    now = datetime.now(timezone.utc)
    assert await listed(since=(now + timedelta(minutes=5)).isoformat()) == []
    assert sorted(await listed(since=(now - timedelta(minutes=5)).isoformat())) == sorted(ids)
    assert await listed(until=(now - timedelta(minutes=5)).isoformat()) == []
    for bad in ({"source": "bogus"}, {"status": "done"}, {"min_reward": "x"}, {"agent_id": 0}, {"page_size": 501}):
        response = await client.get("/api/v2/rollouts", params=bad, headers=user)
        assert response.status_code == 422, (bad, response.text)
    bad_id = await client.get("/api/v2/rollouts/bad%20id", headers=user)
    assert bad_id.status_code == 422
    stats = await RolloutService(ctx).window_stats(one["id"], 10)
    assert stats["n"] == 2 and stats["success_rate"] == 0.5 and stats["mean_reward"] == pytest.approx(0.5)
    running_excluded = await RolloutService(ctx).window_stats(two["id"], 10)
    assert running_excluded["n"] == 0 and running_excluded["success_rate"] is None
    page = await RolloutService(ctx).list(None, RolloutFilters(agent_id=one["id"], page_size=1))
    assert page["total"] == 2 and len(page["items"]) == 1


async def test_agent_resources(client: httpx.AsyncClient, login: Login) -> None:
    developer = await login("developer")
    user = await login("user")
    agent = await create_agent(
        client, developer, unique("res"), config={"system_prompt": "Be brief.", "model": "m1", "tools": ["calculator"]}
    )
    response = await client.get(f"/api/v2/agents/{agent['id']}/resources", headers=user)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data == {
        "agent_id": agent["id"],
        "version": 1,
        "system_prompt": "Be brief.",
        "model": "m1",
        "temperature": 0.2,
        "tools": ["calculator"],
        "adapter": None,
        "variant": None,
    }
    # A promotion updates the row through AgentService and bumps resources_version.
    update = {"config": {"system_prompt": "Be exact.", "temperature": 0.7, "resources_version": 2, "variant": "B"}}
    assert (await client.put(f"/api/v2/agents/{agent['name']}", json=update, headers=developer)).status_code == 200
    data = (await client.get(f"/api/v2/agents/{agent['name']}/resources", headers=user)).json()["data"]
    assert data["version"] == 2 and data["system_prompt"] == "Be exact." and data["temperature"] == 0.7
    assert data["variant"] == "B"
    missing = await client.get("/api/v2/agents/no-such-agent/resources", headers=user)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "AGENT_NOT_FOUND"
    assert (await client.get(f"/api/v2/agents/{agent['id']}/resources")).status_code == 401
