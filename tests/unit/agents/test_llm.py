"""LLM layer: the text tool-call protocol, the OpenAI-compatible provider against a real scripted
HTTP server (native tools, fallback to text, retries), and the runtime loop with a scripted provider."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from agentlightning.agents.llm import ProviderFactory
from agentlightning.agents.llm.base import (
    ChatMessage,
    LLMError,
    LLMProvider,
    LLMRequest,
    LLMResponse,
    ToolCall,
    ToolSpec,
    Usage,
)
from agentlightning.agents.llm.openai_compat import OpenAICompatProvider
from agentlightning.agents.llm.text_tools import parse_tool_calls, to_text_protocol
from agentlightning.agents.profile import AgentProfile
from agentlightning.agents.runtime import AgentRunError, AgentRuntime
from agentlightning.agents.tools.registry import default_registry
from agentlightning.agents.tracing import TraceRecorder
from agentlightning.settings import Settings
from tests.fake_llm_server import FakeLLMServer

CALC = ToolSpec("calculator", "math", {"type": "object", "properties": {"expression": {"type": "string"}}})


def test_text_protocol_parses_tagged_and_fenced_calls() -> None:
    text, calls = parse_tool_calls(
        'Let me compute.\n<tool_call>{"name": "calculator", "arguments": {"expression": "2+2"}}</tool_call>'
    )
    assert text == "Let me compute." and calls[0].name == "calculator" and calls[0].arguments == {"expression": "2+2"}
    _, fenced = parse_tool_calls(
        '```json\n{"name": "calculator", "arguments": {"expression": "1"}}\n```', {"calculator"}
    )
    assert fenced[0].arguments == {"expression": "1"}
    _, unknown = parse_tool_calls('```json\n{"name": "rm", "arguments": {}}\n```', {"calculator"})
    assert unknown == []
    _, unclosed = parse_tool_calls('<tool_call>{"name": "calculator", "arguments": "{\\"expression\\": \\"3\\"}"}')
    assert unclosed[0].arguments == {"expression": "3"}
    plain, none = parse_tool_calls("The answer is 4.")
    assert plain == "The answer is 4." and none == []


def test_text_protocol_rewrites_native_conversations() -> None:
    messages = [
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "2+2?"),
        ChatMessage("assistant", "", tool_calls=[ToolCall("c1", "calculator", {"expression": "2+2"})]),
        ChatMessage("tool", '{"ok": true, "result": 4}', tool_call_id="c1", name="calculator"),
    ]
    out = to_text_protocol(messages, [CALC])
    assert out[0]["role"] == "system" and "<tool_call>" in out[0]["content"] and "calculator" in out[0]["content"]
    assert out[2] == {
        "role": "assistant",
        "content": '<tool_call>{"name": "calculator", "arguments": {"expression": "2+2"}}</tool_call>',
    }
    assert out[3]["role"] == "user" and out[3]["content"].startswith('<tool_result name="calculator">')


async def test_openai_provider_native_tool_calls_and_usage() -> None:
    with FakeLLMServer() as server:
        provider = OpenAICompatProvider(base_url=server.base_url, api_key="k", default_model="fake-model")
        response = await provider.complete(
            LLMRequest([ChatMessage("user", "calculate: 6*7")], tools=[CALC], temperature=0.0)
        )
        await provider.aclose()
    assert response.tool_calls[0].name == "calculator" and response.tool_calls[0].arguments == {"expression": "6*7"}
    assert response.usage.prompt_tokens > 0 and response.finish_reason == "tool_calls"
    assert server.requests[0]["tools"][0]["function"]["name"] == "calculator"


async def test_openai_provider_falls_back_to_text_protocol_when_tools_are_rejected() -> None:
    def script(body: dict[str, Any]) -> dict[str, Any]:
        assert "tools" not in body
        return {"content": '<tool_call>{"name": "calculator", "arguments": {"expression": "1+1"}}</tool_call>'}

    with FakeLLMServer(script, native_tools=False) as server:
        provider = OpenAICompatProvider(base_url=server.base_url, api_key=None, default_model="m")
        response = await provider.complete(LLMRequest([ChatMessage("user", "1+1?")], tools=[CALC]))
        again = await provider.complete(LLMRequest([ChatMessage("user", "1+1?")], tools=[CALC]))
        await provider.aclose()
    assert response.tool_calls[0].arguments == {"expression": "1+1"} and again.tool_calls
    assert provider.native_tools is False and len(server.requests) == 3  # one rejection, then text only


async def test_openai_provider_retries_then_raises() -> None:
    with FakeLLMServer(fail_first=1) as flaky:
        provider = OpenAICompatProvider(base_url=flaky.base_url, api_key="k", default_model="m", max_retries=2)
        response = await provider.complete(LLMRequest([ChatMessage("user", "hello")]))
        await provider.aclose()
    assert response.content == "Answer: hello" and len(flaky.requests) == 2
    with FakeLLMServer(fail_first=10) as broken:
        provider = OpenAICompatProvider(base_url=broken.base_url, api_key="k", default_model="m", max_retries=1)
        with pytest.raises(LLMError):
            await provider.complete(LLMRequest([ChatMessage("user", "hello")]))
        await provider.aclose()
        assert len(broken.requests) == 2  # the first try and max_retries more
        once = OpenAICompatProvider(base_url=broken.base_url, api_key="k", default_model="m", max_retries=0)
        with pytest.raises(LLMError):
            await once.complete(LLMRequest([ChatMessage("user", "hello")]))
        await once.aclose()
        assert len(broken.requests) == 3


async def test_openai_provider_waits_as_long_as_a_rate_limited_upstream_asks() -> None:
    with FakeLLMServer(fail_first=1, fail_status=429, retry_after="1") as limited:
        provider = OpenAICompatProvider(base_url=limited.base_url, api_key="k", default_model="m", max_retries=1)
        started = time.monotonic()
        response = await provider.complete(LLMRequest([ChatMessage("user", "hello")]))
        waited = time.monotonic() - started
        await provider.aclose()
    assert response.content == "Answer: hello" and len(limited.requests) == 2
    assert waited >= 1.0  # the upstream's Retry-After, not the half-second first backoff
    with FakeLLMServer(fail_first=10, fail_status=400) as refusing:
        provider = OpenAICompatProvider(base_url=refusing.base_url, api_key="k", default_model="m", max_retries=3)
        with pytest.raises(LLMError, match="status 400"):
            await provider.complete(LLMRequest([ChatMessage("user", "hello")]))
        await provider.aclose()
    assert len(refusing.requests) == 1  # a refused request is not sent again


@pytest.mark.parametrize("client", ["httpx", "aiohttp"])
async def test_openai_provider_gives_the_same_answer_on_either_http_client(client: str) -> None:
    with FakeLLMServer(fail_first=1) as server:
        provider = OpenAICompatProvider(base_url=server.base_url, api_key="k", default_model="m", http_client=client)
        response = await provider.complete(LLMRequest([ChatMessage("user", "hello")]))
        calls = await provider.complete(LLMRequest([ChatMessage("user", "calculate: 2*3")], tools=[CALC]))
        await provider.aclose()
    assert response.content == "Answer: hello" and response.usage.prompt_tokens > 0 and response.model
    assert calls.tool_calls[0].arguments == {"expression": "2*3"} and calls.finish_reason == "tool_calls"
    assert len(server.requests) == 3  # the 500 was retried
    assert server.requests[0]["messages"] == [{"role": "user", "content": "hello"}]


def test_provider_factory_resolves_auto() -> None:
    local = ProviderFactory(Settings(_env_file=None))  # type: ignore[call-arg]
    assert local.kind_for({}) == "local" and local.model_for({}) == "qwen2.5-coder-1.5b-instruct-q4_k_m"
    remote = ProviderFactory(Settings(_env_file=None, llm_base_url="http://x/v1", llm_model="gpt-x"))  # type: ignore[call-arg]
    assert remote.kind_for({"provider": "auto"}) == "openai" and remote.model_for({"model": "m2"}) == "m2"
    assert remote.kind_for({"provider": "local"}) == "local"
    assert remote.for_agent({}) is remote.for_agent({"provider": "openai"})
    with pytest.raises(LLMError):
        remote.kind_for({"provider": "bogus"})


class ScriptedProvider(LLMProvider):
    """Replies from a list (the stand-in for a model inside unit tests of the loop)."""

    name = "scripted"

    def __init__(self, replies: list[LLMResponse]) -> None:
        self.replies = replies
        self.requests: list[LLMRequest] = []

    async def complete(self, request: LLMRequest) -> LLMResponse:
        self.requests.append(request)
        if not self.replies:
            raise LLMError("script exhausted")
        return self.replies.pop(0)


def _runtime(provider: LLMProvider, **settings: Any) -> AgentRuntime:
    s = Settings(_env_file=None, **settings)  # type: ignore[call-arg]
    factory = ProviderFactory(s)
    factory.for_agent = lambda config: provider  # type: ignore[method-assign]
    ctx = SimpleNamespace(settings=s, db=None)  # no memory tool and no session: the loop needs no database
    return AgentRuntime(ctx, factory, default_registry())  # type: ignore[arg-type]


def _call(expr: str) -> LLMResponse:
    return LLMResponse("", [ToolCall("c", "calculator", {"expression": expr})], Usage(3, 2))


async def test_runtime_loop_runs_tools_and_stops_at_the_step_limit() -> None:
    agent = AgentProfile(id=1, name="a", type="t", config={"tools": ["calculator"], "max_steps": 2})
    provider = ScriptedProvider([_call("1+1"), _call("2+2"), LLMResponse("Final: 4", usage=Usage(1, 1))])
    recorder = TraceRecorder(task_id=None, agent_id=1)
    result = await _runtime(provider).run(agent, "add", {"x": 1}, recorder=recorder)
    assert result.answer == "Final: 4" and result.step_limit_reached and result.steps == 3
    assert [c["ok"] for c in result.tool_calls] == [True, True]
    assert provider.requests[-1].tools == [] and "final answer" in provider.requests[-1].messages[-1].content
    assert "Context:" in provider.requests[0].messages[1].content
    rows = recorder.rows()
    assert [r["kind"] for r in rows] == ["agent_run", "llm", "tool", "llm", "tool", "llm"]
    assert rows[2]["output"]["result"] == 2 and rows[0]["prompt_tokens"] == 7


async def test_runtime_reports_bad_tool_calls_to_the_model_and_fails_on_llm_errors() -> None:
    agent = AgentProfile(id=1, name="a", type="t", config={"tools": ["calculator"]})
    bad = LLMResponse("", [ToolCall("c", "calculator", {}, raw_arguments="{not json")])
    provider = ScriptedProvider([bad, LLMResponse("", [ToolCall("d", "python", {"code": "1"})]), LLMResponse("done")])
    result = await _runtime(provider).run(agent, "x", recorder=TraceRecorder(task_id=None, agent_id=1))
    assert result.answer == "done"
    assert "not a JSON object" in result.tool_calls[0]["error"] and "not permitted" in result.tool_calls[1]["error"]
    recorder = TraceRecorder(task_id=None, agent_id=1)
    with pytest.raises(AgentRunError):
        await _runtime(ScriptedProvider([])).run(agent, "x", recorder=recorder)
    assert recorder.rows()[0]["status"] == "error" and recorder.rows()[1]["error"] == "script exhausted"


async def test_runtime_hides_the_platforms_bookkeeping_context_from_the_model() -> None:
    """A task's verifier and the bandit's labels (``task_type``, ``variant``) never reach the prompt."""
    agent = AgentProfile(id=1, name="a", type="t", config={})
    provider = ScriptedProvider([LLMResponse("done", usage=Usage(1, 1))])
    context = {"task_type": "format", "variant": "terse", "verifier": {"type": "exact", "expected": "X"}}
    await _runtime(provider).run(agent, "say X", context, recorder=TraceRecorder(task_id=None, agent_id=1))
    assert provider.requests[0].messages[-1].content == "say X"
    provider = ScriptedProvider([LLMResponse("done", usage=Usage(1, 1))])
    await _runtime(provider).run(
        agent, "say X", {**context, "unit": "cm"}, recorder=TraceRecorder(task_id=None, agent_id=1)
    )
    assert provider.requests[0].messages[-1].content == 'say X\n\nContext:\n{"unit": "cm"}'
