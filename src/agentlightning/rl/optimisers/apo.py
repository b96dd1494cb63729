"""``apo``: automatic prompt optimisation with textual gradients and beam search.

The algorithm, top to bottom (after "Automatic Prompt Optimization with Gradient Descent and Beam
Search", Pryzant et al., 2023):

1. The beam starts as the incumbent system prompt.
2. Each round draws a minibatch of training tasks and scores every prompt of the beam on it
   (``ctx.evaluate``: one reward in [0, 1] per task). Tasks a prompt fails are its *failures*.
3. For each prompt of the beam, the critic LLM reads the prompt and examples of its failures
   (the task, what the verifier expected, what the agent answered and which tools it called, plus
   the agent's own low-reward rollouts from production) and writes a *textual gradient*: what in
   the prompt makes the agent fail. The failure patterns that can be read off the runs without an
   LLM (:data:`PATTERNS`: tool loops, extra text around an exact answer, JSON where text was
   expected) are named in the question, so a small critic need not find them itself.
4. The critic then *rewrites* the prompt along that gradient, ``branching`` times per prompt.
   Each detected pattern also yields a *targeted edit*: the parent prompt plus the pattern's
   instruction (and, when several patterns were seen, one edit with all their instructions); the
   edit against a tool loop also takes away the tools the agent called in its failed runs, with
   the prompt's sentences that name them, and one more edit tries the agent with no tool at all
   (``targeted_edits``; like the mutation operators of evolutionary prompt search, they keep the
   search moving when the critic is a small local model that rewrites poorly). A candidate is a
   prompt and the tools it runs with; promoting it changes both.
5. The new prompts are scored on the same minibatch; the best ``beam_width`` prompts of the beam
   and its children form the next beam.
6. After the last round (or a stop request), the incumbent and the beam are scored on the same
   larger set of training tasks; the best one is returned (the incumbent itself if nothing beats
   it). The held-out decision belongs to the caller (Auto-RL's promotion gate).

Every candidate, its origin (``critic`` or ``edit:<pattern>``) and its scores land in
``OptimiserResult.candidates``; ``ctx.report`` streams one point per round. No database or HTTP here: everything comes from :class:`OptimiserContext`.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentlightning.rl.optimisers.base import (
    AgentResources,
    Observation,
    Optimiser,
    OptimiserContext,
    OptimiserResult,
    VerifiableTask,
    register,
)


class APOConfig(BaseModel):
    """The settings of one run, read from ``ctx.config`` (other keys are ignored)."""

    model_config = ConfigDict(extra="ignore")

    #: Rounds of critique, rewrite and selection.
    rounds: int = Field(default=3, ge=1, le=50)
    #: Prompts kept after each round.
    beam_width: int = Field(default=2, ge=1, le=10)
    #: Rewrites the critic proposes per prompt of the beam per round.
    branching: int = Field(default=2, ge=1, le=10)
    #: Training tasks each candidate is scored on per round.
    minibatch: int = Field(default=8, ge=1, le=500)
    #: Training tasks of the final comparison of the beam with the incumbent.
    final_eval: int = Field(default=32, ge=1, le=5000)
    #: A task scored below this counts as a failure the critic should see.
    failure_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    #: Failure examples shown to the critic per gradient.
    max_examples: int = Field(default=4, ge=1, le=20)
    #: Longest prompt a rewrite may produce (longer ones are cut).
    max_prompt_chars: int = Field(default=8000, ge=100, le=100_000)
    #: Also propose the parent plus the instruction of each failure pattern seen (:data:`PATTERNS`).
    targeted_edits: bool = True
    seed: int = 0


@dataclass
class Candidate:
    """One prompt (with the tools it runs with) tried during the search."""

    prompt: str
    round: int
    #: The tools the agent may call with this prompt (``None``: the incumbent's).
    tools: tuple[str, ...] | None = None
    parent: int | None = None
    #: What the critic said was wrong with the parent (the textual gradient it was rewritten from).
    gradient: str | None = None
    #: Where it came from: ``incumbent``, ``critic`` or ``edit:<pattern>``.
    origin: str = "critic"
    #: Every minibatch reward it received, over all rounds.
    rewards: list[float] = field(default_factory=list)
    final_score: float | None = None
    #: Tasks it failed in its latest scoring, with what the agent did.
    failures: list[tuple[VerifiableTask, Observation]] = field(default_factory=list)

    @property
    def score(self) -> float:
        """Mean reward over every task it was scored on (0 before any)."""
        return sum(self.rewards) / len(self.rewards) if self.rewards else 0.0

    @property
    def key(self) -> tuple[str, tuple[str, ...] | None]:
        """What makes two candidates the same agent."""
        return self.prompt, self.tools

    def resources(self, incumbent: AgentResources) -> AgentResources:
        """The incumbent's resources with this candidate's prompt and tools."""
        if self.tools is None:
            return incumbent.replace(system_prompt=self.prompt)
        return incumbent.replace(system_prompt=self.prompt, tools=self.tools)


# --- the critic's two prompts -----------------------------------------------------------------

CRITIC_SYSTEM = (
    "You improve the system prompts of LLM agents. You are precise and brief, and you never invent "
    "facts about the tasks beyond what the examples show."
)

GRADIENT_TEMPLATE = """An agent runs with this system prompt:
<prompt>
{prompt}
</prompt>

With it, the agent failed these tasks:
{examples}
{patterns}
Explain in a few sentences what in the system prompt makes the agent fail, and what instruction is
missing or wrong (for example: the output format the tasks require, a tool it should call)."""

REWRITE_TEMPLATE = """An agent runs with this system prompt:
<prompt>
{prompt}
</prompt>

A review of its failures found:
{gradient}

Write an improved system prompt that fixes these problems and keeps what works. This is proposal
{index} of {total}: make it differ from the others. Reply with the new prompt only, between
<prompt> and </prompt>."""


# --- failure patterns that can be read off the runs -------------------------------------------


@dataclass(frozen=True)
class FailurePattern:
    """A way of failing visible in a run without an LLM, and the instruction that targets it."""

    name: str
    #: For the critic: what was seen.
    description: str
    #: The sentence a targeted edit adds to the prompt.
    instruction: str


PATTERNS: dict[str, FailurePattern] = {
    p.name: p
    for p in (
        FailurePattern(
            "tool_loop",
            "the agent called tools again and again and never gave an answer",
            "Call a tool only when the task needs a computation or a look-up you cannot do yourself. When the "
            "task already contains everything the answer needs (text to rewrite, a value to put in another "
            "format), do not call any tool: write the answer directly.",
        ),
        FailurePattern(
            "extra_text",
            "the answer contained an acceptable output but with other words around it",
            "When the task says what to reply with, reply with exactly that and nothing else: no introduction, "
            "no explanation, no quotes and no code fences.",
        ),
        FailurePattern(
            "tool_call_text",
            "the agent wrote an imitation of a tool call (a JSON object with a name and arguments) as its answer",
            "Never write a tool call as your answer. Your final answer is what the task asks for, in the form "
            "the task asks for it.",
        ),
        FailurePattern(
            "json_answer",
            "the agent wrote a JSON object as its answer where plain text was expected",
            "Write your final answer as plain text, not as a JSON object, unless the task asks for JSON.",
        ),
    )
}


def detect_pattern(task: VerifiableTask, observation: Observation) -> str | None:
    """The :data:`PATTERNS` name that explains a failed run, if one does."""
    answer = observation.answer.strip()
    if not answer and (observation.step_limit_reached or len(observation.tool_calls) >= 2):
        return "tool_loop"
    kind = task.verifier.get("type")
    if _looks_like_tool_call(answer):
        return "tool_call_text"
    if answer.startswith("{") and kind != "json_schema":
        return "json_answer"
    if kind in ("exact", "regex", "numeric", "json_schema") and any(
        _passes(task.verifier, part) for part in _fragments(answer)
    ):
        return "extra_text"
    return None


def _fragments(answer: str) -> set[str]:
    """Parts of an answer that could be the whole answer: its lines, `code spans`, what follows its
    last colon, its last word."""
    parts = {line.strip() for line in answer.splitlines()}
    parts |= set(re.findall(r"`([^`\n]+)`", answer))
    parts.add(answer.rsplit(":", 1)[-1].strip())
    words = answer.split()
    if words:
        parts.add(words[-1].strip(".,;!?\"'`"))
    parts.discard(answer)
    parts.discard("")
    return parts


def _passes(verifier: Mapping[str, Any], text: str) -> bool:
    from agentlightning.rollouts.verifiers import verify

    try:
        return float(verify(verifier, text).score) >= 0.5
    except Exception:  # noqa: BLE001 - a spec the verifier refuses explains nothing
        return False


_FENCE = re.compile(r"^```[a-zA-Z]*\s*(.*?)\s*```$", re.DOTALL)


def _looks_like_tool_call(answer: str) -> bool:
    """True for an answer that is a JSON object ``{"name": ..., "arguments": ...}`` (fenced or not)."""
    match = _FENCE.match(answer)
    try:
        value = json.loads(match.group(1) if match else answer)
    except ValueError:
        return False
    return isinstance(value, dict) and "name" in value and "arguments" in value


def tools_of_failed_runs(failures: Sequence[tuple[VerifiableTask, Observation]]) -> set[str]:
    """Every tool the agent called in a run it failed.

    What the tool-loop edit takes away: a small model offered tools calls them on tasks that need
    none, and when the looped tool alone is taken away it loops on another one (the embedded 1.5B
    model, without ``datetime``, called ``memory`` on the same date tasks).  A tool that helps shows
    in passed runs, not here; and the edit is only a candidate, scored and gated like any other.
    """
    return {name for _, observation in failures for name in observation.tool_calls}


_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def without_instructions_naming(prompt: str, tools: set[str]) -> str:
    """``prompt`` without its sentences that name one of ``tools`` (the instruction that sends the
    agent to a tool it then loops on); the prompt unchanged when none does."""
    if not tools:
        return prompt
    named = re.compile(r"\b(" + "|".join(re.escape(t) for t in sorted(tools)) + r")\b", re.IGNORECASE)
    lines = []
    for line in prompt.splitlines():
        kept = [part for part in _SENTENCE.split(line) if not named.search(part)]
        if kept or not line.strip():
            lines.append(" ".join(kept))
    return "\n".join(lines).strip()


def patterns_seen(failures: Sequence[tuple[VerifiableTask, Observation]]) -> list[str]:
    """Patterns explaining the failures, most frequent first."""
    counts: dict[str, int] = {}
    for task, observation in failures:
        name = detect_pattern(task, observation)
        if name is not None:
            counts[name] = counts.get(name, 0) + 1
    return sorted(counts, key=lambda n: (-counts[n], n))


log = logging.getLogger(__name__)
_PROMPT_TAG = re.compile(r"<prompt>\s*(.*?)\s*</prompt>", re.DOTALL | re.IGNORECASE)


def describe_expectation(verifier: Mapping[str, Any]) -> str:
    """What a verifier accepts, in words, for the critic (training tasks only)."""
    kind = verifier.get("type")
    if kind in ("exact", "numeric", "contains"):
        return f"{kind} match of {json.dumps(verifier.get('expected'), ensure_ascii=False)}"
    if kind == "regex":
        return f"output matching the regular expression {verifier.get('pattern')!r}"
    if kind == "json_schema":
        return f"a JSON value matching the schema {json.dumps(verifier.get('schema'), ensure_ascii=False)[:600]}"
    return f"accepted by the {verifier.get('name') or kind} verifier"


def _clip(text: Any, limit: int = 600) -> str:
    value = text if isinstance(text, str) else json.dumps(text, ensure_ascii=False, default=str)
    return value if len(value) <= limit else value[:limit] + "…"


def failure_examples(candidate: Candidate, rollouts: Sequence[Mapping[str, Any]], limit: int) -> str:
    """The failures shown to the critic: observed on training tasks first, then production rollouts."""
    lines: list[str] = []
    for task, seen in candidate.failures[:limit]:
        line = f"- Task: {_clip(task.prompt)}\n  Expected: {describe_expectation(task.verifier)}\n"
        if seen.answer or seen.error or seen.tool_calls:
            line += f"  Agent's answer: {_clip(seen.answer) if seen.answer else '(none)'}\n"
        if seen.tool_calls:
            line += f"  Tools it called: {', '.join(seen.tool_calls[:8])}\n"
        if seen.error:
            line += f"  The run failed: {_clip(seen.error, 200)}\n"
        lines.append(line + f"  Reward: {seen.reward:.2f}")
    for rollout in rollouts[: max(0, limit - len(lines))]:
        lines.append(
            f"- Task: {_clip(rollout.get('input'))}\n  Agent's answer: {_clip(rollout.get('output'))}\n"
            f"  Reward: {float(rollout.get('reward') or 0.0):.2f}"
        )
    return "\n".join(lines) or "- (no failures recorded; the agent is not always right either)"


def extract_prompt(reply: str, limit: int) -> str:
    """The prompt between ``<prompt>`` tags of a rewrite (the whole reply when untagged), cut to ``limit``."""
    match = _PROMPT_TAG.search(reply)
    text = (match.group(1) if match else reply).strip()
    return text[:limit]


# --- the algorithm ----------------------------------------------------------------------------


async def score(
    ctx: OptimiserContext, candidate: Candidate, tasks: Sequence[VerifiableTask], threshold: float
) -> float:
    """Score ``candidate`` on ``tasks``; record its rewards and failures; return the mean."""
    resources = candidate.resources(ctx.incumbent)
    if ctx.observe is not None:
        seen = await ctx.observe(resources, tasks)
    else:
        seen = [Observation(reward=float(r)) for r in await ctx.evaluate(resources, tasks)]
    rewards = [min(1.0, max(0.0, float(o.reward))) for o in seen]
    candidate.rewards.extend(rewards)
    candidate.failures = [(task, o) for task, o, r in zip(tasks, seen, rewards) if r < threshold]
    mean = sum(rewards) / len(rewards) if rewards else 0.0
    log.debug(
        "apo: %s candidate (tools %s) scored %.2f on %d tasks: %r",
        candidate.origin,
        "as the incumbent" if candidate.tools is None else list(candidate.tools),
        mean,
        len(tasks),
        candidate.prompt,
    )
    return mean


async def ask_critic(ctx: OptimiserContext, question: str) -> str | None:
    """The critic's answer, or None when the call fails (the search goes on without it)."""
    try:
        return (
            await ctx.critic([{"role": "system", "content": CRITIC_SYSTEM}, {"role": "user", "content": question}])
        ).strip()
    except Exception as exc:  # noqa: BLE001 - an LLM outage costs this expansion, not the run
        log.warning("apo: the critic failed (%s); skipping this expansion", exc)
        return None


async def expand(
    ctx: OptimiserContext, parent: Candidate, parent_index: int, cfg: APOConfig, round_no: int
) -> list[Candidate]:
    """Textual gradient of ``parent``, then ``cfg.branching`` rewrites along it, then one targeted
    edit per failure pattern seen (when ``cfg.targeted_edits``)."""
    examples = failure_examples(parent, ctx.low_reward_rollouts, cfg.max_examples)
    seen = patterns_seen(parent.failures)
    patterns = "Patterns in these failures: " + "; ".join(PATTERNS[n].description for n in seen) + ".\n" if seen else ""
    gradient = await ask_critic(
        ctx, GRADIENT_TEMPLATE.format(prompt=parent.prompt, examples=examples, patterns=patterns)
    )
    children: list[Candidate] = []
    for index in range(1, cfg.branching + 1):
        if gradient is None or ctx.should_stop():
            break
        reply = await ask_critic(
            ctx, REWRITE_TEMPLATE.format(prompt=parent.prompt, gradient=gradient, index=index, total=cfg.branching)
        )
        if reply is None:
            continue
        prompt = extract_prompt(reply, cfg.max_prompt_chars)
        if prompt:
            children.append(
                Candidate(prompt=prompt, round=round_no, tools=parent.tools, parent=parent_index, gradient=gradient)
            )
    if cfg.targeted_edits:
        missing = [n for n in seen if PATTERNS[n].instruction not in parent.prompt]
        # A tool loop's edit also takes away the tools called in the failed runs, with the prompt's
        # sentences that send the agent to them: a small model offered a tool calls it whatever the
        # prompt says ("call a tool only when needed" next to "for dates call datetime" changes
        # nothing).  The gate decides whether the agent does better without them.
        called = tools_of_failed_runs(parent.failures)
        pruned = without_instructions_naming(parent.prompt, called)
        offered = parent.tools if parent.tools is not None else ctx.incumbent.tools
        fewer = tuple(t for t in offered if t not in called) if offered is not None and called else parent.tools
        # One edit per pattern, and one with all of them when several patterns were seen.
        for names in [[n] for n in missing] + ([missing] if len(missing) > 1 else []):
            instructions = "\n".join(PATTERNS[n].instruction for n in names)
            loop = "tool_loop" in names
            base = pruned if loop and pruned else parent.prompt
            children.append(
                Candidate(
                    prompt=f"{base}\n{instructions}"[: cfg.max_prompt_chars],
                    round=round_no,
                    tools=fewer if loop else parent.tools,
                    parent=parent_index,
                    gradient="; ".join(PATTERNS[n].description for n in names),
                    origin="edit:" + "+".join(names),
                )
            )
        # And the same without any tool, when tools would remain: the mere presence of one keeps a
        # small model writing tool calls as its answers (the 1.5B model, left only the calculator,
        # answered JSON tasks with ``{"name": "getAge", "arguments": ...}``).
        tool_patterns = [n for n in missing if n in ("tool_loop", "tool_call_text")]
        if tool_patterns and offered and (fewer is None or fewer):
            instructions = "\n".join(PATTERNS[n].instruction for n in missing)
            base = without_instructions_naming(parent.prompt, set(offered)) or parent.prompt
            children.append(
                Candidate(
                    prompt=f"{base}\n{instructions}"[: cfg.max_prompt_chars],
                    round=round_no,
                    tools=(),
                    parent=parent_index,
                    gradient="; ".join(PATTERNS[n].description for n in missing),
                    origin="edit:" + "+".join([*missing, "no_tools"]),
                )
            )
    return children


@register
class APO(Optimiser):
    """Automatic prompt optimisation: critic-written textual gradients, rewrites, beam search."""

    name = "apo"

    async def optimise(self, ctx: OptimiserContext) -> OptimiserResult:
        """Search for a system prompt that scores better than the incumbent's on the training tasks."""
        cfg = APOConfig.model_validate(dict(ctx.config))
        rng = random.Random(cfg.seed)
        train = list(ctx.train_tasks)
        if not train:
            raise ValueError("apo needs training tasks")

        incumbent = Candidate(prompt=ctx.incumbent.system_prompt, round=0, origin="incumbent")
        tried: list[Candidate] = [incumbent]  # every candidate, in the order proposed
        seen = {incumbent.key}
        beam = [incumbent]

        for round_no in range(1, cfg.rounds + 1):
            if ctx.should_stop():
                break
            minibatch = rng.sample(train, min(cfg.minibatch, len(train)))
            # Score the beam on this round's minibatch: their failures feed the critic.
            round_scores: dict[int, float] = {}
            for candidate in beam:
                round_scores[id(candidate)] = await score(ctx, candidate, minibatch, cfg.failure_threshold)
            # Expand each prompt of the beam into rewrites, scored on the same minibatch.
            children: list[Candidate] = []
            for parent in beam:
                if ctx.should_stop():
                    break
                for child in await expand(ctx, parent, tried.index(parent), cfg, round_no):
                    if child.key in seen or ctx.should_stop():
                        continue
                    seen.add(child.key)
                    tried.append(child)
                    round_scores[id(child)] = await score(ctx, child, minibatch, cfg.failure_threshold)
                    children.append(child)
            # Keep the best beam_width (ties: the older candidate, so a rewrite must win to enter).
            pool = beam + children
            pool.sort(key=lambda c: (-round_scores.get(id(c), 0.0), tried.index(c)))
            beam = pool[: cfg.beam_width]
            best_now = round_scores.get(id(beam[0]), 0.0)
            point = {"reward": best_now, "beam_best": best_now, "candidates": float(len(tried))}
            if id(incumbent) in round_scores:
                point["incumbent_minibatch"] = round_scores[id(incumbent)]
            await ctx.report(round_no, point)

        # Final comparison: the incumbent and the beam on the same (larger) set of training tasks.
        final_tasks = train if len(train) <= cfg.final_eval else rng.sample(train, cfg.final_eval)
        finalists = [incumbent] + [c for c in beam if c is not incumbent]
        for candidate in finalists:
            resources = candidate.resources(ctx.incumbent)
            rewards = await ctx.evaluate(resources, final_tasks)
            candidate.final_score = sum(rewards) / len(rewards) if rewards else 0.0
        best = max(finalists, key=lambda c: (c.final_score or 0.0, c is incumbent))
        return OptimiserResult(
            best=best.resources(ctx.incumbent),
            best_score=float(best.final_score or 0.0),
            incumbent_score=float(incumbent.final_score or 0.0),
            candidates=[_describe(c, i, ctx.incumbent) for i, c in enumerate(tried)],
        )


def _describe(candidate: Candidate, index: int, incumbent: AgentResources) -> dict[str, Any]:
    """One entry of ``OptimiserResult.candidates``."""
    return {
        "index": index,
        "round": candidate.round,
        "parent": candidate.parent,
        "resources": candidate.resources(incumbent).as_dict(),
        "score": candidate.final_score if candidate.final_score is not None else candidate.score,
        "minibatch_score": candidate.score,
        "final_score": candidate.final_score,
        "evaluations": len(candidate.rewards),
        "gradient": candidate.gradient,
        "origin": candidate.origin,
    }
