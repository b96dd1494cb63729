"""The gateway's pure parts: SSE splitting, stream accumulation, model routing, resource injection,
policies and the recorder's bounds (no services needed)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agentlightning.agents.llm.upstream_http import error_of
from agentlightning.errors import NotFound
from agentlightning.gateway.policy import build_policy
from agentlightning.gateway.recorder import bounded
from agentlightning.gateway.registry import ProviderRegistry
from agentlightning.gateway.resources import apply_resources
from agentlightning.gateway.upstream import SSEReader, StreamAccumulator, completion_from_json
from agentlightning.rollouts.schemas import MAX_PAYLOAD_BYTES
from agentlightning.settings import Settings
from agentlightning.storage.models import GatewayKeyPolicy
from agentlightning.validation import current_limits


def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_sse_reader_splits_events_across_chunk_boundaries() -> None:
    reader = SSEReader()
    stream = (
        b'data: {"a": 1}\n\ndata: {"b"'
        + b": 2}\r\n\r\n: comment\n\nevent: x\ndata: line1\ndata: line2\n\ndata: [DONE]\n\n"
    )
    events = []
    for i in range(0, len(stream), 7):  # arbitrary chunking
        events += reader.feed(stream[i : i + 7])
    events += reader.rest()
    assert [data for _, data in events] == [b'{"a": 1}', b'{"b": 2}', None, b"line1\nline2", b"[DONE]"]
    assert events[2][0] == b": comment"  # non-data events are passed on as they came


def test_stream_accumulator_rebuilds_text_tool_calls_and_usage() -> None:
    acc = StreamAccumulator()
    chunks = [
        {"model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
        {"choices": [{"index": 0, "delta": {"content": "Hel"}}]},
        {"choices": [{"index": 0, "delta": {"content": "lo"}}]},
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [{"index": 0, "id": "c1", "function": {"name": "calc", "arguments": '{"x"'}}]
                    },
                }
            ]
        },
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}},
        "not a dict",
    ]
    for chunk in chunks:
        acc.feed(chunk)
    result = acc.result()
    assert result.content == "Hello" and result.model == "m" and result.finish_reason == "tool_calls"
    assert result.tool_calls == [
        {"id": "c1", "type": "function", "function": {"name": "calc", "arguments": '{"x": 1}'}}
    ]
    assert (result.prompt_tokens, result.completion_tokens, result.total_tokens) == (3, 4, 7)


def test_completion_and_upstream_errors_are_read_defensively() -> None:
    assert completion_from_json({"choices": "nope", "usage": {"prompt_tokens": "x"}}).total_tokens == 0
    reply = completion_from_json(
        {
            "choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 2, "completion_tokens": 1},
        }
    )
    assert reply.content == "hi" and reply.total_tokens == 3
    error = error_of(
        503, json.dumps({"error": {"message": "overloaded", "type": "server_error", "code": "busy"}}).encode(), "2.5"
    )
    assert error.upstream_status == 503 and error.payload["code"] == "busy" and "overloaded" in error.message
    assert error.retry_after == 3  # the upstream's Retry-After, passed on in whole seconds
    assert error_of(502, b"<html>bad gateway</html>").payload == {}
    # a date, nonsense or an unreasonable wait is not passed on
    for header in ("Wed, 21 Oct 2026 07:28:00 GMT", "nan", "inf", "-1", "3600"):
        assert error_of(429, b"{}", header).retry_after is None


def test_registry_routes_listed_prefixed_local_and_fallback_names() -> None:
    settings = _settings(
        llm_base_url="http://default.invalid/v1",
        llm_model="base-model",
        llm_providers={"vllm": {"base_url": "http://vllm.invalid/v1", "models": ["qwen-7b"], "api_key": "k"}},
    )
    registry = ProviderRegistry(settings)
    route = registry.route("qwen-7b")
    assert (route.provider, route.upstream_model, route.url) == (
        "vllm",
        "qwen-7b",
        "http://vllm.invalid/v1/chat/completions",
    )
    assert registry.route("vllm/any-model").upstream_model == "any-model"
    assert registry.route("base-model").provider == "default"
    assert registry.route("local").kind == "local"
    assert registry.label(registry.route("vllm/x")) == "vllm/*" and registry.label(route) == "qwen-7b"
    with pytest.raises(NotFound) as missing:
        registry.route("gpt-5")
    assert missing.value.code == "MODEL_NOT_FOUND"
    fallback = ProviderRegistry(_settings(gateway_fallback_provider="local", gateway_local_model=True))
    assert fallback.route("anything").kind == "local"
    assert ("local", "local") in fallback.models()


def test_resources_replace_or_insert_the_system_prompt() -> None:
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "q"}]}
    apply_resources(body, {"system_prompt": "P", "model": "m2", "temperature": 0.3})
    assert (
        body["messages"][0] == {"role": "system", "content": "P"}
        and body["model"] == "m2"
        and body["temperature"] == 0.3
    )
    body = {"model": "m", "messages": [{"role": "developer", "content": "old"}, {"role": "user", "content": "q"}]}
    apply_resources(body, {"system_prompt": "", "model": None, "temperature": None})
    assert body["messages"][0]["content"] == "old" and body["model"] == "m" and "temperature" not in body
    apply_resources(body, {"system_prompt": "new"})
    assert [m["content"] for m in body["messages"]] == ["new", "q"]


def test_policy_defaults_and_allow_list() -> None:
    settings = _settings(gateway_default_token_budget=0, gateway_default_rate_limit="10/second")
    default = build_policy(None, settings)
    assert default.budget is None and default.allows("anything", "p") and str(default.rate) == "10 per 1 second"
    row = GatewayKeyPolicy(api_key_id=1, allowed_models=["a", "vllm/*"], token_budget=500, budget_window="hour")
    policy = build_policy(row, settings)
    assert policy.allows("a", "x") and policy.allows("qwen", "vllm") and not policy.allows("b", "x")
    assert policy.budget is not None and policy.budget.amount == 500 and policy.describe()["budget_window"] == "hour"


def test_recorded_values_are_bounded() -> None:
    small = {"messages": [{"role": "user", "content": "hi"}]}
    assert bounded(small) == small and bounded(None) is None
    long = {"messages": [{"role": "user", "content": "x" * (current_limits().max_bytes * 2)}]}
    assert bounded(long) == long  # a long conversation fits a span (up to MAX_PAYLOAD_BYTES)
    big = {"messages": [{"role": "user", "content": "x" * (MAX_PAYLOAD_BYTES * 2)}]}
    cut = bounded(big)
    assert cut["truncated"] is True and cut["size_bytes"] > MAX_PAYLOAD_BYTES
    assert len(cut["preview"]) <= MAX_PAYLOAD_BYTES
