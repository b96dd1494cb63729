"""The SDK's bandit, without a platform: local Thompson sampling follows the posteriors it was given
(seeded), each rollout gets one variant whose overrides reach the model and whose name and task
type its metadata records, and a call routed to the platform's gateway falls back to the client's
own upstream when the gateway cannot serve it."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import httpx
import openai
import pytest

from agentlightning import OpenAIWrapper, emit_reward
from agentlightning.sdk.models import AgentResources, BanditState
from agentlightning.sdk.plan import GatewayRoute, plan_call
from agentlightning.sdk.rollout import Rollout
from agentlightning.sdk.variants import BanditSnapshot
from agentlightning.thompson import Arm
from tests.fake_llm_server import FakeLLMServer
from tests.unit.sdk.conftest import Captured, link

DEFINITIONS = [
    {"name": "incumbent"},
    {"name": "terse", "system_prompt": "Answer in one line.", "temperature": 0.0},
    {"name": "cold", "model": "cold-model", "tools": ["calculator"]},
]
LEARNED = [("terse", 50, 1), ("incumbent", 1, 50), ("cold", 1, 50)]
RESOURCES = AgentResources(agent_id=1, system_prompt="Promoted.", model="promoted-model", temperature=0.7)


def state(arms: list[dict[str, Any]] | None = None, *, posterior: str = "beta") -> BanditState:
    return BanditState.model_validate(
        {
            "agent_id": 1,
            "enabled": True,
            "posterior": posterior,
            "variants": [d["name"] for d in DEFINITIONS],
            "definitions": DEFINITIONS,
            "arms": arms or [],
        }
    )


def arm(variant: str, alpha: float, beta: float, task_type: str = "default") -> dict[str, Any]:
    return {"task_type": task_type, "variant": variant, "alpha": alpha, "beta": beta}


def test_local_sampling_follows_the_posteriors() -> None:
    # Without data every variant is tried about equally often.
    fresh = BanditSnapshot.of(state(), random.Random(1))
    assert fresh is not None
    counts = Counter(fresh.choose("default") for _ in range(3000))
    assert set(counts) == {"incumbent", "terse", "cold"} and min(counts.values()) > 850

    # With posteriors, each variant is drawn as often as it has the largest posterior draw: the
    # share matches an independent Monte Carlo estimate of that probability (seeded).
    posteriors = {"incumbent": (6.0, 6.0), "terse": (9.0, 4.0), "cold": (2.0, 9.0)}
    learned = BanditSnapshot.of(state([arm(n, a, b, "maths") for n, (a, b) in posteriors.items()]), random.Random(2))
    assert learned is not None
    draws = 6000
    shares = Counter(learned.choose("maths") for _ in range(draws))
    rng = random.Random(3)
    expected = Counter(max(posteriors, key=lambda n: Arm(*posteriors[n]).sample("beta", rng)) for _ in range(draws))
    for name in posteriors:
        assert abs(shares[name] - expected[name]) / draws < 0.03, (shares, expected)
    assert shares["terse"] > shares["incumbent"] > shares["cold"]
    # Another task type has its own (here: no) data.
    other = Counter(learned.choose("support") for _ in range(1500))
    assert min(other.values()) > 400

    # Converged posteriors: the best variant nearly always, and the same draws for the same seed.
    converged = state([arm("terse", 80, 5), arm("incumbent", 30, 50), arm("cold", 5, 60)])
    first = BanditSnapshot.of(converged, random.Random(7))
    again = BanditSnapshot.of(converged, random.Random(7))
    assert first is not None and again is not None
    picks = [first.choose("default") for _ in range(200)]
    assert picks == [again.choose("default") for _ in range(200)]
    assert picks.count("terse") >= 198

    gaussian = BanditSnapshot.of(
        state(
            [
                {**arm("terse", 1, 1), "observations": 40, "reward_sum": 36.0, "reward_sq_sum": 32.6},
                {**arm("cold", 1, 1), "observations": 40, "reward_sum": 8.0, "reward_sq_sum": 2.0},
            ],
            posterior="gaussian",
        ),
        random.Random(4),
    )
    assert gaussian is not None and Counter(gaussian.choose("default") for _ in range(300))["cold"] < 10


def test_no_bandit_no_variant() -> None:
    disabled = state().model_copy(update={"enabled": False})
    assert BanditSnapshot.of(disabled) is None
    assert BanditSnapshot.of(state().model_copy(update={"definitions": []})) is None


def test_a_rollout_gets_one_variant_and_records_it(captured: Captured) -> None:
    learned = [arm(n, a, b, t) for t in ("default", "support") for n, a, b in LEARNED]
    bandit = BanditSnapshot.of(state(learned))
    assert bandit is not None
    single = plan_call(1, RESOURCES, bandit, None, None)
    assert single.metadata == {"variant": "terse", "task_type": "default"}
    assert single.resources is not None
    assert (single.resources.system_prompt, single.resources.temperature) == ("Answer in one line.", 0.0)
    assert single.resources.model == "promoted-model" and single.resources.variant == "terse"

    block = Rollout(captured.recorder, metadata={"task_type": "support"})
    first = plan_call(1, RESOURCES, bandit, None, block)
    assert first.metadata is None and block.metadata == {"task_type": "support", "variant": "terse"}
    assert block.agent_id == 1
    captured.rollouts()  # the tag was sent at once, before any reward of the block
    assert captured.batches[-1][0]["metadata"] == {"variant": "terse", "task_type": "support"}
    assert captured.batches[-1][0]["agent_id"] == 1

    named = Rollout(captured.recorder, metadata={"variant": "cold"})  # a block may name its variant
    plan = plan_call(1, RESOURCES, bandit, None, named)
    assert plan.resources is not None and plan.resources.model == "cold-model"
    assert plan.resources.system_prompt == "Promoted." and plan.resources.tools is None  # tools are not applied
    unknown = Rollout(captured.recorder, metadata={"variant": "evil"})
    assert plan_call(1, RESOURCES, bandit, None, unknown).resources == RESOURCES
    others = Rollout(captured.recorder, agent_id=2)  # another agent's block: no variant from this one
    assert plan_call(1, RESOURCES, bandit, None, others).resources == RESOURCES and "variant" not in others.metadata


def test_the_openai_wrapper_applies_the_variant_of_each_rollout(llm: FakeLLMServer, captured: Captured) -> None:
    bandit = BanditSnapshot.of(state([arm(n, a, b, t) for t in ("default", "maths") for n, a, b in LEARNED]))
    wrapped = OpenAIWrapper(openai.OpenAI(base_url=llm.base_url, api_key="test"), client=captured.client)
    wrapped._al_link = link(captured.client, RESOURCES, bandit=bandit)
    messages = [{"role": "system", "content": "Own."}, {"role": "user", "content": "hi"}]

    wrapped.chat.completions.create(model="mine", messages=messages, temperature=1.0)
    sent = llm.requests[-1]
    assert sent["messages"][0]["content"] == "Answer in one line." and sent["temperature"] == 0.0
    assert sent["model"] == "promoted-model"
    rollout_id = emit_reward(1.0)
    with captured.client.rollout(metadata={"task_type": "maths"}) as block:
        wrapped.chat.completions.create(model="mine", messages=messages)
        wrapped.chat.completions.create(model="mine", messages=messages)
        emit_reward(0.0)
    sent_rollouts = captured.rollouts()
    assert rollout_id is not None
    assert sent_rollouts[rollout_id]["metadata"] == {"variant": "terse", "task_type": "default"}
    assert sent_rollouts[rollout_id]["rewards"] == [{"value": 1.0}]
    assert sent_rollouts[block.id]["metadata"] == {"task_type": "maths", "variant": "terse"}
    assert [r["messages"][0]["content"] for r in llm.requests[-2:]] == ["Answer in one line."] * 2


def _transport(log: list[httpx.Request], gateway: str) -> httpx.Client:
    """An HTTP client whose ``platform`` host is a gateway that serves (``ok``) or has no adapter
    (``gone``), and whose other hosts are the user's own upstream."""

    def handle(request: httpx.Request) -> httpx.Response:
        log.append(request)
        if request.url.host == "platform" and gateway == "gone":
            error = {"message": "no adapter", "type": "invalid_request_error", "param": None}
            return httpx.Response(404, json={"error": {**error, "code": "agent_has_no_adapter"}})
        model = "smollm2-135m-instruct+lora:adapter" if request.url.host == "platform" else "user-model"
        message = {"role": "assistant", "content": f"from {request.url.host}"}
        body = {
            "id": "c1",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }
        return httpx.Response(200, json=body)

    return httpx.Client(transport=httpx.MockTransport(handle))


ROUTE = GatewayRoute("http://platform/v1", "agl_key", {"X-Agent-Id": "1", "X-Agent-Apply": "adapter"})
ADAPTED = RESOURCES.model_copy(update={"adapter": "exp/adapter"})


def test_an_adapter_routes_the_call_through_the_gateway(captured: Captured) -> None:
    log: list[httpx.Request] = []
    user_client = openai.OpenAI(base_url="http://upstream/v1", api_key="user-key", http_client=_transport(log, "ok"))
    wrapped = OpenAIWrapper(user_client, client=captured.client)
    wrapped._al_link = link(captured.client, ADAPTED, gateway=ROUTE)
    reply = wrapped.chat.completions.create(model="mine", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "from platform"
    (request,) = log
    assert request.url == "http://platform/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer agl_key"
    assert request.headers["x-agent-id"] == "1" and request.headers["x-agent-apply"] == "adapter"
    rollout_id = request.headers["x-rollout-id"]
    sent = captured.rollouts()[rollout_id]
    assert sent["spans"] == [] and sent["status"] == "completed"  # the gateway records the call itself

    # The adapter is gone (rolled back before the next refresh): the call goes to the user's own
    # upstream, and so do the next ones.
    log.clear()
    wrapped = OpenAIWrapper(
        openai.OpenAI(base_url="http://upstream/v1", api_key="user-key", http_client=_transport(log, "gone")),
        client=captured.client,
    )
    wrapped._al_link = link(captured.client, ADAPTED, gateway=ROUTE)
    reply = wrapped.chat.completions.create(model="mine", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "from upstream"
    assert [r.url.host for r in log] == ["platform", "upstream"]
    assert log[1].headers["authorization"] == "Bearer user-key" and "x-agent-id" not in log[1].headers
    wrapped.chat.completions.create(model="mine", messages=[{"role": "user", "content": "again"}])
    assert [r.url.host for r in log] == ["platform", "upstream", "upstream"]
    assert [s["model"] for s in captured.spans()[-2:]] == ["user-model", "user-model"]


def test_an_unreachable_gateway_leaves_the_call_to_the_users_upstream(llm: FakeLLMServer, captured: Captured) -> None:
    from tests.sdk_helpers import dead_url

    wrapped = OpenAIWrapper(openai.OpenAI(base_url=llm.base_url, api_key="test", max_retries=0), client=captured.client)
    route = GatewayRoute(f"{dead_url()}/v1", "agl_key", {"X-Agent-Id": "1", "X-Agent-Apply": "adapter"})
    wrapped._al_link = link(captured.client, ADAPTED, gateway=route)
    reply = wrapped.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "Answer: hi"
    assert captured.spans()[-1]["model"] == "promoted-model"


@pytest.mark.filterwarnings("ignore:Resolved model mismatch")  # autogen-ext notes the promoted model
async def test_langchain_and_autogen_apply_and_record_the_variant(llm: FakeLLMServer, captured: Captured) -> None:
    from agentlightning import AutoGenWrapper, LangChainWrapper
    from tests.unit.sdk.test_autogen_wrapper import assistant
    from tests.unit.sdk.test_langchain_wrapper import model, prompt

    bandit = BanditSnapshot.of(state([arm(n, a, b) for n, a, b in LEARNED]))
    chain = LangChainWrapper(model(llm), prompt(), client=captured.client)
    chain._al_link = link(captured.client, RESOURCES, bandit=bandit)
    await chain.ainvoke({"input": "hi"})
    assert llm.requests[-1]["messages"][0] == {"role": "system", "content": "Answer in one line."}
    assert llm.requests[-1]["temperature"] == 0.0
    team_member = AutoGenWrapper(assistant(llm), client=captured.client)
    team_member._al_link = link(captured.client, RESOURCES, bandit=bandit)
    await team_member.run(task="hello")
    assert llm.requests[-1]["messages"][0] == {"role": "system", "content": "Answer in one line."}
    recorded = [r for r in captured.rollouts().values() if r["spans"]]
    assert [r["metadata"] for r in recorded] == [{"variant": "terse", "task_type": "default"}] * 2
