"""The gateway's errors (OpenAI's format, the right status), per-key policies and budgets, promoted
agent resources, spans in rollouts, rewards, and what a hostile plain user may not do. In-process
(ASGI) with the ``openai`` client where the wire format matters."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI

from agentlightning.observability import metrics
from tests.fake_llm_server import FakeLLMServer
from tests.helpers import unique
from tests.integration.agents.helpers import create_agent
from tests.integration.gateway.helpers import flush, new_key, received, rollout_of

Login = Callable[[str], Awaitable[dict[str, str]]]


def ai_for(client: httpx.AsyncClient, key: str) -> openai.AsyncOpenAI:
    """The official async client, talking to the app in-process."""
    return openai.AsyncOpenAI(
        base_url="http://testserver/v1",
        api_key=key,
        max_retries=0,
        http_client=httpx.AsyncClient(transport=client._transport, base_url="http://testserver"),
    )


def chat(model: str = "fake-model", text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


async def set_policy(client: httpx.AsyncClient, admin: dict[str, str], key_id: int, **policy: Any) -> dict[str, Any]:
    response = await client.put(f"/api/v2/gateway/keys/{key_id}/policy", json=policy, headers=admin)
    assert response.status_code == 200, response.text
    return dict(response.json()["data"])


def assert_openai_error(response: httpx.Response, status: int, code: str, error_type: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    assert body["error"]["code"] == code, body
    if error_type is not None:
        assert body["error"]["type"] == error_type, body


async def test_errors_are_openai_errors_with_the_right_status(
    client: httpx.AsyncClient, login: Login, app: FastAPI
) -> None:
    admin = await login("admin")
    key_id, key = await new_key(client, await login("user"))
    bearer = {"Authorization": f"Bearer {key}"}
    ai = ai_for(client, key)

    # A bad key: 401 through the openai client.
    with pytest.raises(openai.AuthenticationError) as bad_key:
        await ai_for(client, "agl_not-a-real-key-000000000000").chat.completions.create(**chat())
    assert bad_key.value.code == "invalid_api_key" and bad_key.value.type == "authentication_error"
    assert_openai_error(await client.post("/v1/chat/completions", json=chat()), 401, "invalid_api_key")

    # Unknown model: 404; invalid fields and bad JSON: 400, naming the parameter.
    with pytest.raises(openai.NotFoundError) as unknown:
        await ai.chat.completions.create(**chat("no-such-model"))
    assert unknown.value.code == "model_not_found" and unknown.value.param == "model"
    invalid = await client.post("/v1/chat/completions", json=chat(temperature=7), headers=bearer)
    assert_openai_error(invalid, 400, "invalid_request_error", "invalid_request_error")
    assert invalid.json()["error"]["param"] == "temperature"
    assert_openai_error(
        await client.post("/v1/chat/completions", json={"model": "fake-model", "messages": []}, headers=bearer),
        400,
        "invalid_request_error",
    )
    broken_json = await client.post("/v1/chat/completions", content=b"{nope", headers=bearer)
    assert_openai_error(broken_json, 400, "invalid_json")
    bad_rollout = await client.post("/v1/chat/completions", json=chat(), headers={**bearer, "X-Rollout-Id": "a b"})
    assert_openai_error(bad_rollout, 400, "invalid_rollout_id")
    task_rollout = await client.post("/v1/chat/completions", json=chat(), headers={**bearer, "X-Rollout-Id": "task-1"})
    assert_openai_error(task_rollout, 400, "invalid_rollout_id")  # task runs' rollouts are the platform's
    assert_openai_error(await client.get("/v1/nothing-here", headers=bearer), 404, "not_found")

    # The key's model allow-list: 403; its body limit: 413.
    await set_policy(client, admin, key_id, allowed_models=["gpt-4o-mini", "broken/*"], max_request_bytes=2048)
    with pytest.raises(openai.PermissionDeniedError) as denied:
        await ai.chat.completions.create(**chat("fake-model"))
    assert denied.value.code == "model_not_allowed"
    assert {m.id for m in (await ai.models.list()).data} == {"gpt-4o-mini", "broken-model"}
    assert (await ai.models.retrieve("broken/any-name")).owned_by == "broken"
    with pytest.raises(openai.NotFoundError):
        await ai.models.retrieve("fake-model")  # served here, but not to this key
    assert (await ai.chat.completions.create(**chat("gpt-4o-mini"))).choices[0].message.content == "Answer: hi"
    with pytest.raises(openai.APIStatusError) as too_big:
        await ai.chat.completions.create(**chat("gpt-4o-mini", "x" * 4000))
    assert too_big.value.status_code == 413 and too_big.value.code == "request_too_large"
    # Bodies past the platform-wide limit are refused by the middleware, in the same format.
    huge = await client.post(
        "/v1/chat/completions", content=b"x" * (app.state.settings.max_request_body_bytes + 1), headers=bearer
    )
    assert_openai_error(huge, 413, "payload_too_large")

    # Upstream errors: its status and its error object are passed on.
    errors_before = metrics.GATEWAY_ERRORS.labels(model="broken-model", code="UPSTREAM_ERROR")._value.get()
    with pytest.raises(openai.InternalServerError) as upstream:
        await ai.chat.completions.create(**chat("broken-model"))
    assert upstream.value.status_code == 500 and upstream.value.body["message"] == "scripted failure"
    assert upstream.value.type == "server_error"
    assert upstream.value.response.headers["retry-after"] == "7"  # the upstream's, passed on
    assert metrics.GATEWAY_ERRORS.labels(model="broken-model", code="UPSTREAM_ERROR")._value.get() == errors_before + 1
    with pytest.raises(openai.InternalServerError):
        await ai.chat.completions.create(**chat("broken-model"), stream=True)
    await ai.close()


async def test_upstream_timeout_is_a_504(client: httpx.AsyncClient, login: Login) -> None:
    admin = await login("admin")
    key_id, key = await new_key(client, await login("user"))
    await set_policy(client, admin, key_id, upstream_timeout_seconds=0.3)
    ai = ai_for(client, key)
    with pytest.raises(openai.APIStatusError) as slow:
        await ai.chat.completions.create(**chat("slow-model"))
    assert slow.value.status_code == 504 and slow.value.code == "upstream_error"
    await ai.close()


async def test_rate_limit_and_token_budget_per_key(client: httpx.AsyncClient, login: Login, app: FastAPI) -> None:
    admin = await login("admin")
    user = await login("user")
    key_id, key = await new_key(client, user)
    other_id, other_key = await new_key(client, user)
    await set_policy(client, admin, key_id, token_budget=10, budget_window="day")
    ai = ai_for(client, key)
    reply = await ai.chat.completions.create(**chat(text="one two three four five six seven eight nine ten"))
    assert reply.usage is not None and reply.usage.total_tokens > 10
    await flush(app)  # tokens are charged in the background
    with pytest.raises(openai.RateLimitError) as spent:
        await ai.chat.completions.create(**chat())
    assert spent.value.code == "insufficient_quota" and spent.value.response.headers["retry-after"]
    policy = (await client.get(f"/api/v2/gateway/keys/{key_id}/policy", headers=admin)).json()["data"]
    assert policy["tokens_used"] == reply.usage.total_tokens and policy["effective"]["token_budget"] == 10
    # The same user's other key has its own budget: one key's spending never blocks another's.
    assert (await ai_for(client, other_key).chat.completions.create(**chat())).choices
    # Lifting the budget lets the key through again.
    await set_policy(client, admin, key_id, token_budget=0)
    assert (await ai.chat.completions.create(**chat())).choices

    await set_policy(client, admin, other_id, rate_limit="2/minute")
    other = ai_for(client, other_key)
    for _ in range(2):
        await other.chat.completions.create(**chat())
    with pytest.raises(openai.RateLimitError) as limited:
        await other.chat.completions.create(**chat())
    assert limited.value.code == "rate_limit_exceeded" and limited.value.type == "rate_limit_error"
    await ai.close()
    await other.close()


async def test_policy_admin_endpoints(client: httpx.AsyncClient, login: Login) -> None:
    admin = await login("admin")
    user = await login("user")
    key_id, _ = await new_key(client, user)
    url = f"/api/v2/gateway/keys/{key_id}/policy"
    # Only admins: the key's own user and developers may not read or change a policy.
    for role_headers in (user, await login("developer")):
        assert (await client.get(url, headers=role_headers)).status_code == 403
        assert (await client.put(url, json={"token_budget": 1}, headers=role_headers)).status_code == 403
        assert (await client.delete(url, headers=role_headers)).status_code == 403
    fresh = (await client.get(url, headers=admin)).json()["data"]
    assert fresh["token_budget"] is None and fresh["effective"]["rate_limit"] == "600 per 1 minute"
    saved = await set_policy(client, admin, key_id, allowed_models=["fake-model"], rate_limit="5/second")
    assert saved["allowed_models"] == ["fake-model"] and saved["updated_by"]
    bad = await client.put(url, json={"rate_limit": "lots"}, headers=admin)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "VALIDATION_ERROR"
    assert (await client.put(url, json={"surprise": 1}, headers=admin)).status_code == 422
    missing = await client.get("/api/v2/gateway/keys/999999/policy", headers=admin)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "API_KEY_NOT_FOUND"
    removed = (await client.delete(url, headers=admin)).json()["data"]
    assert removed["allowed_models"] is None and removed["updated_at"] is None


async def test_calls_land_as_llm_spans_grouped_by_rollout_and_take_rewards(
    client: httpx.AsyncClient, login: Login, app: FastAPI
) -> None:
    user = await login("user")
    _, key = await new_key(client, user)
    bearer = {"Authorization": f"Bearer {key}"}
    rollout = unique("episode")
    for text in ("first", "second"):
        response = await client.post(
            "/v1/chat/completions", json=chat(text=text), headers={**bearer, "X-Rollout-Id": rollout}
        )
        assert response.status_code == 200 and response.headers["x-rollout-id"] == rollout
    streamed = await client.post(
        "/v1/chat/completions", json=chat(text="third", stream=True), headers={**bearer, "X-Rollout-Id": rollout}
    )
    assert streamed.text.endswith("data: [DONE]\n\n")
    single = await client.post("/v1/chat/completions", json=chat(text="alone"), headers=bearer)
    await flush(app)

    detail = await rollout_of(app, rollout)
    assert detail["source"] == "gateway" and detail["owner"] and detail["agent_id"] is None
    spans = detail["spans"]
    assert [s["kind"] for s in spans] == ["llm"] * 3
    assert [s["input"]["messages"][-1]["content"] for s in spans] == ["first", "second", "third"]
    assert spans[0]["output"]["message"]["content"] == "Answer: first"
    assert spans[2]["output"]["message"]["content"] == "Answer: third"
    assert all(s["model"] == "fake-model" and s["prompt_tokens"] >= 1 and s["latency_ms"] > 0 for s in spans)
    assert spans[2]["completion_tokens"] > 0  # a stream's usage, read on the way

    alone = await rollout_of(app, single.headers["x-rollout-id"])
    assert alone["status"] == "completed" and len(alone["spans"]) == 1
    assert alone["input"]["messages"][0]["content"] == "alone"

    reward = await client.post(
        f"/v1/rollouts/{rollout}/reward", json={"reward": 0.75, "comment": "good"}, headers=bearer
    )
    assert reward.status_code == 200, reward.text
    assert reward.json()["reward"] == 0.75 and reward.json()["object"] == "rollout.reward"
    span_reward = await client.post(
        f"/v1/rollouts/{rollout}/reward", json={"reward": 1, "span_id": spans[0]["span_id"]}, headers=bearer
    )
    assert span_reward.status_code == 200, span_reward.text
    detail = await rollout_of(app, rollout)
    assert detail["reward"] == 0.75 and len(detail["rewards"]) == 2
    bad = await client.post(f"/v1/rollouts/{rollout}/reward", json={"reward": "high"}, headers=bearer)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "body.reward"


async def test_a_hostile_user_cannot_touch_another_users_rollouts(
    client: httpx.AsyncClient, login: Login, app: FastAPI
) -> None:
    alice = await login("user")
    mallory = await login("user")
    assert alice != mallory
    _, alice_key = await new_key(client, alice)
    _, mallory_key = await new_key(client, mallory)
    rollout = unique("alice")
    ok = await client.post(
        "/v1/chat/completions", json=chat(text="mine"), headers={"X-API-Key": alice_key, "X-Rollout-Id": rollout}
    )
    assert ok.status_code == 200
    await flush(app)
    # Mallory can neither reward Alice's rollout nor see that it exists...
    stolen = await client.post(
        f"/v1/rollouts/{rollout}/reward", json={"reward": -1}, headers={"X-API-Key": mallory_key}
    )
    assert_openai_error(stolen, 404, "rollout_not_found")
    # ... nor add her calls to it: her call is served, but its span is not written into Alice's rollout.
    sneaky = await client.post(
        "/v1/chat/completions", json=chat(text="intrusion"), headers={"X-API-Key": mallory_key, "X-Rollout-Id": rollout}
    )
    assert sneaky.status_code == 200
    await flush(app)
    detail = await rollout_of(app, rollout)
    assert [s["input"]["messages"][-1]["content"] for s in detail["spans"]] == ["mine"]
    assert detail["rewards"] == []
    # Through the API: Alice sees her rollout, Mallory does not.
    assert (await client.get(f"/api/v2/rollouts/{rollout}", headers=alice)).json()["data"]["id"] == rollout
    assert (await client.get(f"/api/v2/rollouts/{rollout}", headers=mallory)).status_code == 404


async def test_promoted_agent_resources_reach_the_upstream(
    client: httpx.AsyncClient, login: Login, llm: FakeLLMServer
) -> None:
    developer = await login("developer")
    name = unique("support")
    agent = await create_agent(
        client,
        developer,
        name,
        config={"system_prompt": "You are prompt v1.", "model": "fake-model", "temperature": 0.1},
    )
    _, key = await new_key(client, await login("user"))
    bearer = {"Authorization": f"Bearer {key}"}

    marker = unique("by-header")
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": "client prompt"}, {"role": "user", "content": marker}],
        "temperature": 1.5,
    }
    assert (
        await client.post("/v1/chat/completions", json=body, headers={**bearer, "X-Agent-Name": name})
    ).status_code == 200
    (seen,) = received(llm, marker)
    assert seen["messages"][0] == {"role": "system", "content": "You are prompt v1."}
    assert seen["model"] == "fake-model" and seen["temperature"] == 0.1

    # A promotion (an update of the agent's prompt) changes what the next call sends.
    update = await client.put(
        f"/api/v2/agents/{agent['id']}",
        json={"config": {"system_prompt": "You are prompt v2.", "model": "fake-model", "temperature": 0.1}},
        headers=developer,
    )
    assert update.status_code == 200, update.text
    marker = unique("by-model")
    by_model = {"model": f"agent:{name}", "messages": [{"role": "user", "content": marker}]}
    assert (await client.post("/v1/chat/completions", json=by_model, headers=bearer)).status_code == 200
    (seen,) = received(llm, marker)
    assert seen["messages"][0] == {"role": "system", "content": "You are prompt v2."}
    assert seen["messages"][1]["content"] == marker and seen["model"] == "fake-model"

    marker = unique("by-id")
    assert (
        await client.post(
            "/v1/chat/completions", json=chat(text=marker), headers={**bearer, "X-Agent-Id": str(agent["id"])}
        )
    ).status_code == 200
    assert received(llm, marker)[0]["messages"][0]["content"] == "You are prompt v2."
    unknown = await client.post("/v1/chat/completions", json=chat(), headers={**bearer, "X-Agent-Name": "nobody-here"})
    assert_openai_error(unknown, 404, "agent_not_found")


async def test_recording_never_waits_for_the_database(client: httpx.AsyncClient, login: Login, app: FastAPI) -> None:
    """Calls return before their spans are written: the recorder's queue is drained by one task."""
    _, key = await new_key(client, await login("user"))
    responses = await asyncio.gather(
        *(client.post("/v1/chat/completions", json=chat(text=f"n{i}"), headers={"X-API-Key": key}) for i in range(20))
    )
    assert all(r.status_code == 200 for r in responses)
    await flush(app)
    assert app.state.ctx is not None


async def test_revoked_keys_and_disabled_users_are_refused_at_once(
    client: httpx.AsyncClient, login: Login, app: FastAPI
) -> None:
    """API keys are remembered a few seconds per process, but revoking one (or disabling its user)
    takes effect on the next call."""
    from agentlightning.auth.gate import gate_for
    from agentlightning.auth.service import set_active

    user = await login("user")
    key_id, key = await new_key(client, user)
    _, second = await new_key(client, user)
    assert (await client.post("/v1/chat/completions", json=chat(), headers={"X-API-Key": key})).status_code == 200
    assert (await client.post("/v1/chat/completions", json=chat(), headers={"X-API-Key": second})).status_code == 200
    gate = gate_for(app.state.ctx)
    remembered = dict(gate.api_keys)  # what another API process would still remember
    assert (await client.delete(f"/auth/api-keys/{key_id}", headers=user)).status_code == 200
    revoked = await client.post("/v1/chat/completions", json=chat(), headers={"X-API-Key": key})
    assert_openai_error(revoked, 401, "invalid_api_key", "authentication_error")
    gate.api_keys.update(remembered)  # ... is refused too: the revocation's blacklist entry decides
    revoked = await client.post("/v1/chat/completions", json=chat(), headers={"X-API-Key": key})
    assert_openai_error(revoked, 401, "invalid_api_key")
    username = (await client.get("/auth/profile", headers=user)).json()["data"]["username"]
    await set_active(app.state.ctx, username, False)
    disabled = await client.post("/v1/chat/completions", json=chat(), headers={"X-API-Key": second})
    assert_openai_error(disabled, 401, "invalid_api_key")


async def test_gateway_metrics_by_model(client: httpx.AsyncClient, login: Login) -> None:
    _, key = await new_key(client, await login("user"))
    for model in ("fake-model", "fake/some-unlisted-model"):
        response = await client.post("/v1/chat/completions", json=chat(model), headers={"X-API-Key": key})
        assert response.status_code == 200, response.text
    text = (await client.get("/metrics", headers=await login("admin"))).text
    assert 'gateway_requests_total{model="fake-model",outcome="ok"}' in text
    assert 'gateway_requests_total{model="fake/*",outcome="ok"}' in text  # unlisted names never become labels
    assert 'gateway_tokens_total{direction="in",model="fake-model"}' in text
    assert 'gateway_request_duration_seconds_bucket{le="0.005",model="fake-model"}' in text
