"""An SDK-wrapped agent that runs a bandit, against the real platform (both backends): the SDK draws
a variant per rollout from the posteriors it refreshes, the variant's overrides reach the model,
the rollouts it records (``POST /api/v2/rollouts``) count the pull and their rewards update the
arm, so the choice converges on the better variant; and a plain user learns nothing through the
bandit's fields that the agent's own page does not show, and cannot forge pulls."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import openai
import pytest

from agentlightning import Client, OpenAIWrapper, emit_reward
from agentlightning.core.context import AppContext
from agentlightning.rl.optimisers.bandit_service import BanditService, install_reward_listener, remove_reward_listener
from tests.fake_llm_server import FakeLLMServer
from tests.helpers import unique
from tests.integration.agents.helpers import create_agent
from tests.integration.sdk.conftest import SdkFactory

Login = Callable[[str], Awaitable[dict[str, str]]]
GOOD_MARKER = "State the answer as 'Answer: 42'."
VARIANTS = [
    {"name": "good", "system_prompt": f"You are exact. {GOOD_MARKER}", "temperature": 0.0},
    {"name": "bad", "system_prompt": "You are vague.", "temperature": 1.2},
]
BANDIT = {"enabled": True, "include_incumbent": False}
QUESTION = [{"role": "system", "content": "Own prompt."}, {"role": "user", "content": "What is six times seven?"}]


def variant_script(body: dict[str, Any]) -> dict[str, Any]:
    """Answers 42 only under the ``good`` variant's system prompt."""
    system = next((m.get("content") or "" for m in body.get("messages", []) if m.get("role") == "system"), "")
    return {"content": "Answer: 42" if GOOD_MARKER in system else "I would rather not say."}


@pytest.fixture
def llm() -> Iterator[FakeLLMServer]:
    """The scripted model of this module: right only under the good variant's prompt."""
    with FakeLLMServer(variant_script) as server:
        yield server


@pytest.fixture
def listening(ctx: AppContext) -> Iterator[AppContext]:
    """The bandit's listeners (what ``serve`` runs as the ``bandit`` service) on the app's context."""
    install_reward_listener(ctx)
    yield ctx
    remove_reward_listener(ctx)


async def _bandit_agent(client: httpx.AsyncClient, login: Login) -> dict[str, Any]:
    admin = await login("admin")
    return await create_agent(
        client, admin, unique("sdk-bandit"), type="sdk", config={"bandit": BANDIT, "variants": VARIANTS}
    )


def _solve(wrapped: OpenAIWrapper, sdk_client: Client, rounds: int) -> list[str]:
    """``rounds`` rollouts of task type ``maths``, each rewarded 1 when the answer is right."""
    chosen = []
    for _ in range(rounds):
        with sdk_client.rollout(metadata={"task_type": "maths"}) as rollout:
            reply = wrapped.chat.completions.create(model="fake-model", messages=QUESTION, temperature=0.5)
            emit_reward(1.0 if "42" in (reply.choices[0].message.content or "") else 0.0)
        chosen.append(rollout.metadata["variant"])
    assert sdk_client.flush(60)
    return chosen


async def test_sdk_variants_are_applied_counted_and_learned(
    sdk: SdkFactory, llm: FakeLLMServer, client: httpx.AsyncClient, login: Login, listening: AppContext
) -> None:
    agent = await _bandit_agent(client, login)
    sdk_client, _ = await sdk("developer")
    wrapped = OpenAIWrapper(openai.OpenAI(base_url=llm.base_url, api_key="test"), client=sdk_client)
    await asyncio.to_thread(wrapped.enable_rl_training, agent["name"], refresh_interval=3600)
    link = wrapped._al_link
    assert link is not None and link.bandit is not None and sorted(link.bandit.variants) == ["bad", "good"]
    link.rng.seed(5)

    chosen: list[str] = []
    for _ in range(6):  # six batches of eight rollouts, the posteriors refreshed between batches
        chosen += await asyncio.to_thread(_solve, wrapped, sdk_client, 8)
        await asyncio.to_thread(wrapped.refresh)
    assert sdk_client.recorder.stats()["rejected"] == 0

    # Each call carried its rollout's variant, not the agent's own prompt or temperature.
    sent = [(r["messages"][0]["content"], r["temperature"]) for r in llm.requests[-len(chosen) :]]
    by_name = {v["name"]: (v["system_prompt"], v["temperature"]) for v in VARIANTS}
    assert sent == [by_name[name] for name in chosen]

    # The platform counted every SDK choice as a pull and took every reward into its arm.
    arms = {a["variant"]: a for a in await BanditService(listening).summary(agent["id"])}
    counts = Counter(chosen)
    assert {name: arms[name]["pulls"] for name in arms} == dict(counts)
    assert {name: arms[name]["observations"] for name in arms} == dict(counts)
    assert {a["task_type"] for a in arms.values()} == {"maths"}
    assert arms["good"]["alpha"] == counts["good"] + 1 and arms["bad"]["beta"] == counts["bad"] + 1
    # The choice converged: the later batches go almost only to the better variant.
    assert chosen[24:].count("good") >= 22, chosen

    # A rollout sent again (a retried batch) is not a second pull; one outside a block is a pull
    # of task type "default".
    first = (await asyncio.to_thread(sdk_client.list_rollouts, agent_id=agent["id"]))[0]
    assert first.metadata is not None and first.metadata["variant"] in ("good", "bad")
    await asyncio.to_thread(
        sdk_client.ingest, [{"id": first.id, "agent_id": agent["id"], "metadata": first.metadata, "spans": []}]
    )

    def single_call() -> str:
        wrapped.chat.completions.create(model="fake-model", messages=QUESTION)
        rollout_id = emit_reward(1.0)
        assert rollout_id is not None and sdk_client.flush(60)
        return rollout_id

    single_id = await asyncio.to_thread(single_call)
    stored = await asyncio.to_thread(sdk_client.get_rollout, single_id)
    assert stored is not None and stored.metadata is not None
    assert stored.metadata["task_type"] == "default" and stored.reward == 1.0
    after = await BanditService(listening).summary(agent["id"])
    assert sum(a["pulls"] for a in after if a["task_type"] == "maths") == len(chosen)
    default = [a for a in after if a["task_type"] == "default"]
    assert [(a["variant"], a["pulls"], a["observations"]) for a in default] == [(stored.metadata["variant"], 1, 1)]
    wrapped.disable_rl_training()


async def test_a_plain_user_learns_nothing_more_and_cannot_forge_pulls(
    sdk: SdkFactory, llm: FakeLLMServer, client: httpx.AsyncClient, login: Login, listening: AppContext
) -> None:
    agent = await _bandit_agent(client, login)
    alice, alice_headers = await sdk("user")
    mallory, mallory_headers = await sdk("user")
    wrapped = OpenAIWrapper(openai.OpenAI(base_url=llm.base_url, api_key="test"), client=alice)
    # A plain user may run an existing agent with RL training: it is found, not registered.
    await asyncio.to_thread(wrapped.enable_rl_training, agent["name"], refresh_interval=3600)
    assert wrapped.agent_id == agent["id"]
    (variant,) = await asyncio.to_thread(_solve, wrapped, alice, 1)
    alice_rollout = (await asyncio.to_thread(alice.list_rollouts, agent_id=agent["id"]))[0]
    alice_name = (await client.get("/auth/profile", headers=alice_headers)).json()["data"]["username"]

    # What Mallory reads of the agent: the bandit's fields hold the agent's declared configuration
    # (which its own page shows any reader) and per-arm aggregates, nothing of Alice's rollouts.
    page = (await client.get(f"/api/v2/agents/{agent['id']}", headers=mallory_headers)).json()["data"]
    bandit = await client.get(f"/api/v2/agents/{agent['id']}/bandit", headers=mallory_headers)
    resources = await client.get(f"/api/v2/agents/{agent['id']}/resources", headers=mallory_headers)
    assert bandit.status_code == 200 and resources.status_code == 200
    state = bandit.json()["data"]
    assert set(state) == {"agent_id", "enabled", "posterior", "variants", "definitions", "arms"}
    declared = {v["name"]: v for v in page["config"]["variants"]}
    for definition in state["definitions"]:
        shown = {k: v for k, v in definition.items() if v is not None and k != "name"}
        assert shown == {k: v for k, v in declared[definition["name"]].items() if v is not None and k != "name"}
    for arm in state["arms"]:
        assert set(arm) == {
            "task_type",
            "variant",
            "alpha",
            "beta",
            "pulls",
            "observations",
            "mean_reward",
            "posterior_mean",
            "reward_sum",
            "reward_sq_sum",
        }
    for body in (bandit.text, resources.text):
        assert alice_rollout.id not in body and alice_name not in body
    assert await asyncio.to_thread(mallory.get_rollout, alice_rollout.id) is None

    # Mallory cannot add pulls or rewards to Alice's rollout, nor make arms of undeclared variants.
    forged = [
        {"id": alice_rollout.id, "agent_id": agent["id"], "metadata": {"variant": "bad"}, "rewards": [{"value": 0}]},
    ]
    refused = await client.post("/api/v2/rollouts", json={"rollouts": forged}, headers=mallory_headers)
    assert refused.status_code == 409, refused.text
    evil = {"id": unique("evil"), "agent_id": agent["id"], "metadata": {"variant": "evil", "task_type": "maths"}}
    taken = await client.post(
        "/api/v2/rollouts", json={"rollouts": [{**evil, "rewards": [{"value": 1.0}]}]}, headers=mallory_headers
    )
    assert taken.status_code == 200, taken.text
    arms = await BanditService(listening).summary(agent["id"])
    assert [(a["variant"], a["pulls"], a["observations"]) for a in arms] == [(variant, 1, 1)]
    assert "evil" not in json.dumps(arms)
    wrapped.disable_rl_training()
