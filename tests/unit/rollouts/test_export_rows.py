"""How a rollout becomes a TRL / VERL row (pure functions, no database)."""

from __future__ import annotations

from typing import Any

from agentlightning.rollouts.export import conversation, trl_row, verl_row


def _llm(messages: list[dict[str, Any]], output: dict[str, Any], status: str = "ok") -> dict[str, Any]:
    return {"kind": "llm", "status": status, "input": {"messages": messages}, "output": output}


def test_the_last_llm_call_gives_the_multi_turn_prompt() -> None:
    first = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    calls = [{"name": "calculator", "arguments": {"expression": "1+1"}}]
    second = first + [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "calculator", "arguments": '{"expression": "1+1"}'},
                }
            ],
        },
        {"role": "tool", "content": "2", "tool_call_id": "c1", "name": "calculator"},
    ]
    rollout = {
        "id": "r1",
        "agent_id": 3,
        "reward": 0.5,
        "spans": [
            {"kind": "agent_run", "status": "ok", "input": {"task": "U"}},
            _llm(first, {"content": "", "tool_calls": calls}),
            {"kind": "tool", "status": "ok", "input": {"arguments": {}}},
            _llm(second, {"content": "It is 2."}),
            _llm(second, {"content": "ignored"}, status="error"),
        ],
    }
    row = trl_row(rollout)
    assert row is not None
    assert [m["role"] for m in row["prompt"]] == ["system", "user", "assistant", "tool"]
    assert row["prompt"][2]["tool_calls"][0]["function"]["arguments"] == '{"expression": "1+1"}'
    assert row["prompt"][3] == {"role": "tool", "content": "2", "tool_call_id": "c1", "name": "calculator"}
    assert row["completion"] == [{"role": "assistant", "content": "It is 2."}]
    assert (row["reward"], row["rollout_id"], row["agent_id"]) == (0.5, "r1", 3)


def test_rollouts_without_spans_use_their_input_and_output() -> None:
    assert conversation({"id": "a", "input": "hi", "output": "hello"}) == (
        [{"role": "user", "content": "hi"}],
        {"role": "assistant", "content": "hello"},
    )
    task = {"id": "b", "input": {"task": "T", "context": {}}, "output": {"answer": "A"}}
    assert conversation(task) == ([{"role": "user", "content": "T"}], {"role": "assistant", "content": "A"})
    chat = {"id": "c", "input": {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}}
    assert conversation(chat) == ([{"role": "user", "content": "q"}], {"role": "assistant", "content": "a"})
    parts = {
        "id": "d",
        "input": [{"role": "user", "content": [{"type": "text", "text": "x"}]}],
        "output": {"content": "y"},
    }
    assert conversation(parts) == ([{"role": "user", "content": "x"}], {"role": "assistant", "content": "y"})
    for empty in ({"id": "e"}, {"id": "f", "input": "only input"}, {"id": "g", "output": "only output"}):
        assert conversation(empty) is None and trl_row(empty) is None and verl_row(empty, 0) is None


def test_verl_row_layout() -> None:
    rollout = {
        "id": "r",
        "agent_id": None,
        "reward": None,
        "input": "2+2?",
        "output": "4",
        "metadata": {"task_type": "math", "verifier": {"type": "exact", "expected": "4"}},
    }
    row = verl_row(rollout, 7)
    assert row == {
        "data_source": "agentlightning",
        "prompt": [{"role": "user", "content": "2+2?"}],
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": "4"},
        "extra_info": {
            "split": "train",
            "index": 7,
            "rollout_id": "r",
            "agent_id": None,
            "reward": None,
            "response": "4",
        },
    }
