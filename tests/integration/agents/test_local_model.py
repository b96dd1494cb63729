"""The embedded local model, for real: llama.cpp on the CPU with a GGUF from the pinned wheels
(nothing is downloaded). The README's example runs through the API on the default model
(Qwen2.5-Coder-1.5B: about two minutes on a busy 2-core machine, the one slow test); the provider
tests use ``qwen2.5-coder-0.5b``, the default's smaller sibling of the same family (same chat
template and tool-call format), so each stays under a minute. Each model is loaded once per test
session (the engine is process-wide)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from agentlightning.agents.llm.base import ChatMessage, LLMRequest, ToolCall
from agentlightning.agents.llm.local import LocalLlamaProvider, get_engine
from agentlightning.agents.llm.local_models import get_spec
from agentlightning.agents.pool import WorkerPool
from agentlightning.agents.templates import TEMPLATES
from agentlightning.agents.tools.registry import default_registry
from agentlightning.settings import Settings
from tests.helpers import unique
from tests.integration.agents.helpers import create_agent, wait_for_task

MODEL = "qwen2.5-coder-0.5b"
pytestmark = [pytest.mark.slow, pytest.mark.parametrize("backend", ["postgres"])]


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    """No LLM_BASE_URL: agents on ``auto`` are served by the default embedded model, as on a fresh install."""
    return settings_factory(agent_poll_interval_seconds=0.2, agent_workers_min=1, agent_workers_max=2)


@pytest.fixture
def provider(settings: Settings) -> LocalLlamaProvider:
    """A provider of the 0.5B model as the platform builds one (weights shared process-wide)."""
    return LocalLlamaProvider(
        model=MODEL,
        model_dir=settings.local_model_dir,
        n_ctx=settings.local_model_context,
        n_threads=settings.local_model_threads,
        parallel=settings.local_model_parallel,
    )


def _math_request(question: str, settings: Settings, tool_choice: str = "required") -> LLMRequest:
    math = TEMPLATES["math_agent"].config
    return LLMRequest(
        messages=[ChatMessage("system", math["system_prompt"]), ChatMessage("user", question)],
        tools=default_registry().specs(settings, list(math["tools"])),
        temperature=0.0,
        max_tokens=64,
        tool_choice=tool_choice,
    )


async def test_readme_example_is_answered_with_the_calculator(
    client: httpx.AsyncClient, admin: dict[str, str], pool: WorkerPool, settings: Settings
) -> None:
    # The seeded math_agent has the tool-using configuration (migration 0011).
    seeded = (await client.get("/api/v2/agents/math_agent", headers=admin)).json()["data"]
    assert seeded["config"]["tool_choice"] == "required"
    assert seeded["config"]["system_prompt"] == TEMPLATES["math_agent"].config["system_prompt"]
    agent = await create_agent(client, admin, unique("math"), template="math_agent")
    body = {"task": "What is 17 * 23?", "agent_id": agent["name"]}
    first = await client.post("/api/v2/agents/assign", json=body, headers=admin)
    task = await wait_for_task(client, admin, first.json()["task_id"], timeout=280)
    assert task["status"] == "completed", task
    result = task["result"]
    assert result["provider"] == "local" and result["model"] == get_spec(settings.local_model).name
    assert "391" in result["answer"] and "459" not in result["answer"]
    assert result["tool_calls"][0]["name"] == "calculator" and result["tool_calls"][0]["ok"]
    assert result["cached"] is False
    # A good answer is cached: the same task again is served from the cache.
    again = await client.post("/api/v2/agents/assign", json=body, headers=admin)
    repeat = await wait_for_task(client, admin, again.json()["task_id"], timeout=120)
    assert repeat["status"] == "completed" and repeat["result"]["cached"] is True
    assert repeat["result"]["answer"] == result["answer"]
    spans = (await client.get(f"/api/v2/tasks/{task['task_id']}/trace", headers=admin)).json()["data"]["spans"]
    assert [s["kind"] for s in spans].count("llm") == 2 and any(s["kind"] == "tool" for s in spans)


async def test_tokens_stream_and_tool_calls_are_native(provider: LocalLlamaProvider, settings: Settings) -> None:
    pieces: list[str] = []
    response = await provider.complete(_math_request("What is 1234 + 5678?", settings), on_token=pieces.append)
    assert len(pieces) > 3 and "".join(pieces).startswith("<tool_call>")
    assert response.finish_reason == "tool_calls" and response.provider == "local"
    call = response.tool_calls[0]
    assert isinstance(call, ToolCall) and call.name == "calculator" and call.raw_arguments is None
    assert response.usage.prompt_tokens > 100 and response.usage.completion_tokens > 0
    # stream(): the same pieces as an async iterator, no tools needed
    request = LLMRequest([ChatMessage("user", "Say hello in three words.")], temperature=0.0, max_tokens=8)
    streamed = [piece async for piece in provider.stream(request)]
    assert streamed and "".join(streamed).strip()


async def test_parallel_calls_and_results_render_in_qwens_format(provider: LocalLlamaProvider) -> None:
    engine = await asyncio.to_thread(provider.engine)
    calls = [ToolCall("c1", "calculator", {"expression": "3*4"}), ToolCall("c2", "calculator", {"expression": "5*6"})]
    messages = [
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "3*4 and 5*6?"),
        ChatMessage("assistant", "", tool_calls=calls),
        ChatMessage("tool", "12", tool_call_id="c1", name="calculator"),
        ChatMessage("tool", "30", tool_call_id="c2", name="calculator"),
    ]
    spec = _math_request("x", Settings(_env_file=None)).tools  # type: ignore[call-arg]
    prompt = engine.render(messages, spec)
    assert '<tool_call>\n{"name": "calculator", "arguments": {"expression": "3*4"}}\n</tool_call>' in prompt
    assert prompt.count("<tool_response>") == 2 and prompt.count("<|im_start|>user") == 2  # results in one turn
    assert '"name": "calculator"' in prompt.split("<|im_end|>")[0]  # the tool list in the system turn
    assert prompt.endswith("<|im_start|>assistant\n")
    # tool_choice "none": the model answers from the two results instead of calling again
    request = LLMRequest(messages, tools=spec, temperature=0.0, max_tokens=24, tool_choice="none")
    answer = await provider.complete(request)
    assert not answer.tool_calls and answer.content.strip()


async def test_concurrent_requests_queue_on_one_loaded_model(provider: LocalLlamaProvider) -> None:
    other = LocalLlamaProvider(model=MODEL, model_dir=provider.model_dir, n_ctx=provider.n_ctx)
    requests = [
        LLMRequest([ChatMessage("user", f"Count from {n} to {n + 3}.")], temperature=0.0, max_tokens=12)
        for n in (1, 10, 20)
    ]
    results = await asyncio.gather(
        provider.complete(requests[0]), other.complete(requests[1]), provider.complete(requests[2])
    )
    assert all(r.content and r.usage.completion_tokens > 0 for r in results)
    assert provider.engine() is other.engine()  # loaded once per process
    assert get_engine(provider.engine().path, n_ctx=provider.n_ctx, n_threads=0, parallel=1) is provider.engine()
