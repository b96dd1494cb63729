"""``apo`` on a scripted critic and evaluator, and once through the scripted OpenAI-compatible server.

The evaluator rewards an answer only when the system prompt carries the instruction the critic
proposes once it has seen the failures, so a run that improves the prompt must have read them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agentlightning.agents.llm import ProviderFactory
from agentlightning.rl.optimisers.apo import (
    APO,
    PATTERNS,
    detect_pattern,
    extract_prompt,
    patterns_seen,
    tools_of_failed_runs,
    without_instructions_naming,
)
from agentlightning.rl.optimisers.base import (
    OPTIMISERS,
    AgentResources,
    Observation,
    OptimiserContext,
    OptimiserResult,
    VerifiableTask,
)
from agentlightning.rl.optimisers.critic import llm_critic
from tests.fake_llm_server import FakeLLMServer
from tests.helpers import make_settings

FIX = "End every reply with 'Answer: <number>'."
BAD_PROMPT = "You are an assistant. Ramble freely."
TASKS = [
    VerifiableTask(id=f"t{i}", prompt=f"What is {i} * 7?", verifier={"type": "numeric", "expected": i * 7})
    for i in range(20)
]


def critic_reply(text: str) -> str:
    """The scripted critic: proposes ``FIX`` only after it was shown failures (the gradient lists them)."""
    if "failed these tasks" in text:
        saw_failures = "Expected: numeric match" in text
        return "The prompt never states the answer format." if saw_failures else "Nothing to fix."
    if "never states the answer format" in text:
        current = text.split("<prompt>")[1].split("</prompt>")[0].strip()
        index = re.search(r"proposal\s+(\d+)", text).group(1)  # type: ignore[union-attr]
        return f"<prompt>{current}\n{FIX} (variant {index})</prompt>"
    return "<prompt>You are an assistant.</prompt>"


def scripted_critic(calls: list[str]) -> Any:
    """:func:`critic_reply` as a ``Critic``, recording what it was asked."""

    async def critic(messages: Sequence[Mapping[str, str]]) -> str:
        calls.append(messages[-1]["content"])
        return critic_reply(messages[-1]["content"])

    return critic


async def evaluator(resources: AgentResources, tasks: Sequence[VerifiableTask]) -> list[float]:
    """1.0 per task when the prompt states the answer format, else 0.0."""
    return [1.0 if FIX in resources.system_prompt else 0.0 for _ in tasks]


def replying(text: str) -> Any:
    """A critic that answers ``text`` to every question."""

    async def critic(messages: Sequence[Mapping[str, str]]) -> str:
        return text

    return critic


def observed_by(ctx: OptimiserContext, tasks: list[VerifiableTask], observe: Any) -> None:
    """Train on ``tasks``, with ``observe`` telling what the agent did (and its rewards)."""

    async def evaluate(resources: AgentResources, batch: Sequence[VerifiableTask]) -> list[float]:
        return [o.reward for o in await observe(resources, batch)]

    ctx.train_tasks, ctx.evaluate, ctx.observe = tasks, evaluate, observe


def make_ctx(
    tmp_path: Path, critic: Any, config: Mapping[str, Any], stop_after: int | None = None
) -> tuple[OptimiserContext, list[tuple[int, dict[str, float]]]]:
    reports: list[tuple[int, dict[str, float]]] = []

    async def report(step: int, values: Mapping[str, float]) -> None:
        reports.append((step, dict(values)))

    ctx = OptimiserContext(
        agent_id=1,
        incumbent=AgentResources(system_prompt=BAD_PROMPT, model="m", temperature=0.2),
        train_tasks=TASKS,
        low_reward_rollouts=[{"input": "What is 3 * 3?", "output": "Well, numbers are fun", "reward": 0.0}],
        evaluate=evaluator,
        critic=critic,
        config=config,
        report=report,
        should_stop=lambda: stop_after is not None and len(reports) >= stop_after,
        workdir=tmp_path,
    )
    return ctx, reports


async def test_apo_improves_a_bad_prompt(tmp_path: Path) -> None:
    calls: list[str] = []
    ctx, reports = make_ctx(
        tmp_path, scripted_critic(calls), {"rounds": 2, "beam_width": 2, "branching": 2, "minibatch": 4}
    )
    result = await OPTIMISERS["apo"]().optimise(ctx)
    assert isinstance(result, OptimiserResult)
    assert FIX in result.best.system_prompt and BAD_PROMPT in result.best.system_prompt
    assert result.best.model == "m" and result.best.temperature == 0.2  # only the prompt changes
    assert result.incumbent_score == 0.0 and result.best_score == 1.0
    assert [step for step, _ in reports] == [1, 2]
    assert reports[0][1]["reward"] == 1.0
    # Every candidate is listed with its score; the incumbent first.
    assert result.candidates[0]["resources"]["system_prompt"] == BAD_PROMPT
    assert len(result.candidates) >= 3
    assert all("score" in c and "round" in c for c in result.candidates)
    assert any("Expected: numeric match" in text for text in calls)  # the critic saw observed failures


async def test_apo_keeps_the_incumbent_when_nothing_helps(tmp_path: Path) -> None:
    async def useless_critic(messages: Sequence[Mapping[str, str]]) -> str:
        return "<prompt>Be terse.</prompt>"

    ctx, _ = make_ctx(tmp_path, useless_critic, {"rounds": 2, "minibatch": 3})
    result = await APO().optimise(ctx)
    assert result.best.system_prompt == BAD_PROMPT
    assert result.best_score == result.incumbent_score == 0.0
    assert [c["resources"]["system_prompt"] for c in result.candidates] == [BAD_PROMPT, "Be terse."]


async def test_apo_survives_a_failing_critic(tmp_path: Path) -> None:
    async def broken_critic(messages: Sequence[Mapping[str, str]]) -> str:
        raise RuntimeError("LLM call failed: upstream down")

    ctx, reports = make_ctx(tmp_path, broken_critic, {"rounds": 2, "minibatch": 3})
    result = await APO().optimise(ctx)
    assert result.best.system_prompt == BAD_PROMPT and len(result.candidates) == 1
    assert len(reports) == 2


async def test_apo_honours_a_stop_request(tmp_path: Path) -> None:
    ctx, reports = make_ctx(tmp_path, scripted_critic([]), {"rounds": 10, "minibatch": 2}, stop_after=1)
    result = await APO().optimise(ctx)
    assert len(reports) == 1
    assert result.best.system_prompt  # still returns the best so far


def test_extract_prompt() -> None:
    assert extract_prompt("Sure!\n<prompt>\n  New prompt.\n</prompt>\nthanks", 100) == "New prompt."
    assert extract_prompt("untagged prompt", 100) == "untagged prompt"
    assert extract_prompt("<prompt>" + "x" * 500 + "</prompt>", 100) == "x" * 100


async def test_apo_through_the_scripted_llm_server(tmp_path: Path) -> None:
    """The critic is a real provider talking HTTP to the scripted OpenAI-compatible server."""

    def script(body: dict[str, Any]) -> dict[str, Any]:
        return {"content": critic_reply(body["messages"][-1]["content"])}

    with FakeLLMServer(script) as llm:
        settings = make_settings("sqlite+aiosqlite:///:memory:", None, "unused", llm_base_url=llm.base_url)
        providers = ProviderFactory(settings)
        try:
            ctx, reports = make_ctx(
                tmp_path, llm_critic(providers, {"provider": "default"}), {"rounds": 1, "branching": 1, "minibatch": 4}
            )
            result = await APO().optimise(ctx)
        finally:
            await providers.aclose()
        assert FIX in result.best.system_prompt
        assert result.best_score == 1.0 > result.incumbent_score
        roles = [[m["role"] for m in body["messages"]] for body in llm.requests]
        assert roles and all(r == ["system", "user"] for r in roles)
        assert len(llm.requests) == 2  # one gradient, one rewrite


def test_failure_patterns_are_read_off_the_runs() -> None:
    exact = VerifiableTask(id="e", prompt="Reply with ALPHA.", verifier={"type": "exact", "expected": "ALPHA"})
    schema = VerifiableTask(id="j", prompt="JSON please", verifier={"type": "json_schema", "schema": {}})
    loop = Observation(reward=0.0, tool_calls=("datetime", "datetime", "datetime"), error="empty answer")
    assert detect_pattern(exact, loop) == "tool_loop"
    assert detect_pattern(exact, Observation(reward=0.0, answer="Sure! The word is ALPHA.")) == "extra_text"
    assert detect_pattern(exact, Observation(reward=0.0, answer='{"name": "format"}')) == "json_answer"
    assert detect_pattern(schema, Observation(reward=0.0, answer='{"a": 1}')) is None
    imitation = '```json\n{"name": "age", "arguments": {"age": 32}}\n```'
    assert detect_pattern(schema, Observation(reward=0.0, answer=imitation)) == "tool_call_text"
    assert (
        detect_pattern(exact, Observation(reward=0.0, answer='{"name": "sort", "arguments": [1]}')) == "tool_call_text"
    )
    assert detect_pattern(exact, Observation(reward=0.0, answer="BETA")) is None
    date = VerifiableTask(id="d", prompt="ISO date?", verifier={"type": "regex", "pattern": r"^\s*2036-09-12\s*$"})
    said = "The date September 12, 2036 in ISO 8601 format is `2036-09-12`."
    assert detect_pattern(date, Observation(reward=0.0, answer=said)) == "extra_text"
    assert detect_pattern(date, Observation(reward=0.0, answer="It is 2036-12-09.")) is None
    failures = [(exact, loop), (exact, loop), (exact, Observation(reward=0.0, answer="It is ALPHA"))]
    assert patterns_seen(failures) == ["tool_loop", "extra_text"]


async def test_apo_targets_the_patterns_it_sees(tmp_path: Path) -> None:
    """With a critic that rewrites nothing useful, the targeted edit for the observed pattern wins,
    and the critic was told the pattern and shown what the agent answered."""
    fix = PATTERNS["extra_text"].instruction
    tasks = [
        VerifiableTask(id=f"w{i}", prompt="Reply with OK.", verifier={"type": "exact", "expected": "OK"})
        for i in range(6)
    ]
    calls: list[str] = []

    async def useless_critic(messages: Sequence[Mapping[str, str]]) -> str:
        calls.append(messages[-1]["content"])
        return "<prompt>Be terse.</prompt>"

    async def observe(resources: AgentResources, batch: Sequence[VerifiableTask]) -> list[Observation]:
        if fix in resources.system_prompt:
            return [Observation(reward=1.0, answer="OK") for _ in batch]
        return [Observation(reward=0.0, answer="Sure, here it is: OK", tool_calls=("calculator",)) for _ in batch]

    ctx, _ = make_ctx(tmp_path, useless_critic, {"rounds": 1, "minibatch": 3, "branching": 1})
    observed_by(ctx, tasks, observe)
    result = await APO().optimise(ctx)
    assert result.best.system_prompt == f"{BAD_PROMPT}\n{fix}"
    assert result.best_score == 1.0 and result.incumbent_score == 0.0
    assert [c["origin"] for c in result.candidates] == ["incumbent", "critic", "edit:extra_text"]
    gradient_question = calls[0]
    assert "Agent's answer: Sure, here it is: OK" in gradient_question
    assert "Tools it called: calculator" in gradient_question
    assert PATTERNS["extra_text"].description in gradient_question


async def test_apo_without_targeted_edits_keeps_the_incumbent(tmp_path: Path) -> None:
    tasks = [
        VerifiableTask(id=f"w{i}", prompt="Reply with OK.", verifier={"type": "exact", "expected": "OK"})
        for i in range(4)
    ]

    async def observe(resources: AgentResources, batch: Sequence[VerifiableTask]) -> list[Observation]:
        return [Observation(reward=0.0, answer="Sure: OK") for _ in batch]

    ctx, _ = make_ctx(
        tmp_path, replying("<prompt>Be terse.</prompt>"), {"rounds": 1, "minibatch": 2, "targeted_edits": False}
    )
    ctx.train_tasks, ctx.observe = tasks, observe
    result = await APO().optimise(ctx)
    assert [c["origin"] for c in result.candidates] == ["incumbent", "critic"]


async def test_apo_combines_the_edits_when_several_patterns_show(tmp_path: Path) -> None:
    """Tool loops on some tasks and JSON answers on others: only both instructions together fix all."""
    loop_fix, json_fix = PATTERNS["tool_loop"].instruction, PATTERNS["json_answer"].instruction
    tasks = [
        VerifiableTask(id=f"w{i}", prompt="Say OK.", verifier={"type": "exact", "expected": "OK"}) for i in range(6)
    ]

    async def observe(resources: AgentResources, batch: Sequence[VerifiableTask]) -> list[Observation]:
        out = []
        for i, _ in enumerate(batch):
            if i % 2 and loop_fix not in resources.system_prompt:
                out.append(Observation(reward=0.0, tool_calls=("datetime",) * 5, step_limit_reached=True))
            elif not i % 2 and json_fix not in resources.system_prompt:
                out.append(Observation(reward=0.0, answer='{"name": "say"}'))
            else:
                out.append(Observation(reward=1.0, answer="OK"))
        return out

    ctx, _ = make_ctx(tmp_path, replying("<prompt>Be terse.</prompt>"), {"rounds": 1, "minibatch": 6, "branching": 1})
    observed_by(ctx, tasks, observe)
    result = await APO().optimise(ctx)
    origins = [c["origin"] for c in result.candidates]
    assert origins[:2] == ["incumbent", "critic"] and "edit:json_answer+tool_loop" in origins[2:]
    assert loop_fix in result.best.system_prompt and json_fix in result.best.system_prompt
    assert result.best_score == 1.0


def test_a_tool_loop_edit_drops_the_sentence_naming_the_looped_tool() -> None:
    starter = (
        "You are a helpful, precise assistant. Answer concisely. For arithmetic call the calculator tool and "
        "for dates the datetime tool instead of working it out yourself; then answer from the tool's result."
    )
    assert (
        without_instructions_naming(starter, {"datetime"}) == "You are a helpful, precise assistant. Answer concisely."
    )
    assert without_instructions_naming(starter, set()) == starter
    assert without_instructions_naming("Be exact.\nUse memory for names.", {"memory"}) == "Be exact."
    task = VerifiableTask(id="d", prompt="Write 2020-01-02.", verifier={"type": "exact", "expected": "2020-01-02"})
    loop = Observation(reward=0.0, tool_calls=("datetime", "datetime"), step_limit_reached=True)
    other = Observation(reward=0.0, answer='{"name": "memory"}', tool_calls=("memory",))
    assert tools_of_failed_runs([(task, loop), (task, other)]) == {"datetime", "memory"}


async def test_apo_takes_away_the_tools_the_agent_loops_on(tmp_path: Path) -> None:
    """A small model offered a tool calls it whatever the prompt says: the tool-loop edit takes
    away the tools called in the failed runs (with the sentence naming them) and keeps the others."""
    tasks = [
        VerifiableTask(id=f"d{i}", prompt=f"Task {i}.", verifier={"type": "exact", "expected": "done"})
        for i in range(4)
    ]
    incumbent = "Be precise. For dates call the datetime tool."
    wanted = ["datetime", "memory"]  # even tasks loop on datetime, odd ones on memory, when offered

    async def observe(resources: AgentResources, batch: Sequence[VerifiableTask]) -> list[Observation]:
        out = []
        for task in batch:
            tool = wanted[int(task.id[1:]) % 2]
            if resources.tools is None or tool in resources.tools:
                out.append(Observation(reward=0.0, tool_calls=(tool,) * 4, step_limit_reached=True))
            else:
                out.append(Observation(reward=1.0, answer="done"))
        return out

    ctx, _ = make_ctx(
        tmp_path, replying(f"<prompt>{incumbent} Be terse.</prompt>"), {"rounds": 1, "minibatch": 4, "branching": 1}
    )
    ctx.incumbent = ctx.incumbent.replace(system_prompt=incumbent, tools=("calculator", "datetime", "memory"))
    observed_by(ctx, tasks, observe)
    result = await APO().optimise(ctx)
    assert result.best.system_prompt == f"Be precise.\n{PATTERNS['tool_loop'].instruction}"
    assert result.best.tools == ("calculator",)
    assert result.best_score == 1.0 and result.incumbent_score == 0.0
    edit = next(c for c in result.candidates if c["origin"] == "edit:tool_loop")
    assert edit["resources"]["tools"] == ["calculator"]
    no_tools = next(c for c in result.candidates if c["origin"] == "edit:tool_loop+no_tools")
    assert no_tools["resources"]["tools"] == [] and "datetime" not in no_tools["resources"]["system_prompt"]


async def test_apo_tries_the_agent_without_tools_when_any_tool_confuses_it(tmp_path: Path) -> None:
    """The agent loops on one tool, and with that one gone writes tool calls as its answers as long
    as any tool is offered: only the edit without tools fixes it."""
    tasks = [
        VerifiableTask(id=f"j{i}", prompt=f"JSON {i}.", verifier={"type": "exact", "expected": "{}"}) for i in range(4)
    ]

    async def observe(resources: AgentResources, batch: Sequence[VerifiableTask]) -> list[Observation]:
        tools = ("calculator", "memory") if resources.tools is None else resources.tools
        if "memory" in tools:
            return [Observation(reward=0.0, tool_calls=("memory",) * 3, step_limit_reached=True) for _ in batch]
        if tools:
            return [Observation(reward=0.0, answer='{"name": "get", "arguments": {}}') for _ in batch]
        return [Observation(reward=1.0, answer="{}") for _ in batch]

    ctx, _ = make_ctx(tmp_path, replying("<prompt>Be terse.</prompt>"), {"rounds": 1, "minibatch": 4, "branching": 1})
    ctx.incumbent = ctx.incumbent.replace(tools=("calculator", "memory"))
    observed_by(ctx, tasks, observe)
    result = await APO().optimise(ctx)
    assert result.best.tools == () and result.best_score == 1.0
    assert [c["origin"] for c in result.candidates] == [
        "incumbent",
        "critic",
        "edit:tool_loop",
        "edit:tool_loop+no_tools",
    ]
