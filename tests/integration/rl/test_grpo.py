"""``grpo`` for real, on the CPU: GRPO (TRL) with LoRA on SmolLM2-135M-Instruct from its pinned GGUF
(nothing is downloaded), a tiny budget (2 steps, 2 generations of 8 tokens, 2 tasks), the adapter
served back through the runtime's provider factory, and a stop request honoured between steps.

No database is involved: the optimiser contract hands it tasks and callbacks, never a session."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from agentlightning.agents.llm import ProviderFactory
from agentlightning.agents.llm.base import ChatMessage, LLMRequest
from agentlightning.agents.llm.hf_models import MARKER, prepare_hf_model
from agentlightning.agents.llm.local_models import get_spec
from agentlightning.agents.llm.transformers_provider import ADAPTER_META, TransformersProvider
from agentlightning.rl.optimisers.base import AgentResources, OptimiserContext, OptimiserResult, VerifiableTask
from agentlightning.rl.optimisers.grpo import GrpoOptimiser
from agentlightning.rl.optimisers.grpo_train import user_message
from agentlightning.rollouts.verifiers import verify
from agentlightning.settings import Settings
from tests.helpers import make_settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

TASKS = [
    VerifiableTask(
        id="a", prompt="What is 2+3? Answer with the number only.", verifier={"type": "numeric", "expected": 5}
    ),
    VerifiableTask(
        id="b", prompt="What is 4+4? Answer with the number only.", verifier={"type": "numeric", "expected": 8}
    ),
]
TINY = {"max_steps": 2, "num_generations": 2, "max_completion_length": 8, "learning_rate": 1e-4, "lora_r": 4}
INCUMBENT = AgentResources(system_prompt="You are a calculator. Reply with one number.")


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Adapters under a fresh RL_ARTIFACTS_DIR; SmolLM2 as the local model (its directory as make install left it)."""
    root = tmp_path_factory.mktemp("grpo")
    return make_settings(
        "sqlite+aiosqlite:///:memory:", None, "grpo", rl_artifacts_dir=str(root / "rl"), local_model="smollm2-135m"
    )


def _context(
    settings: Settings, name: str, *, config: Mapping[str, object], should_stop: object = None
) -> tuple[OptimiserContext, list[tuple[int, dict[str, float]]]]:
    reports: list[tuple[int, dict[str, float]]] = []
    factory = ProviderFactory(settings)

    async def report(step: int, metrics: Mapping[str, float]) -> None:
        reports.append((step, dict(metrics)))

    async def evaluate(resources: AgentResources, tasks: Sequence[VerifiableTask]) -> list[float]:
        """The agent's serving path: the factory's provider for these resources, greedy answers."""
        # The incumbent is served by llama.cpp from the GGUF, the candidate by base + adapter.
        provider = factory.for_agent({"provider": "local", "adapter": resources.adapter})
        scores = []
        for task in tasks:
            request = LLMRequest(
                messages=[
                    ChatMessage("system", resources.system_prompt),
                    ChatMessage("user", user_message(task.prompt, task.context)),
                ],
                temperature=0.0,
                max_tokens=8,
            )
            scores.append(verify(task.verifier, (await provider.complete(request)).content).score)
        return scores

    async def critic(messages: Sequence[Mapping[str, str]]) -> str:
        raise AssertionError("grpo needs no critic")

    ctx = OptimiserContext(
        agent_id=1,
        incumbent=INCUMBENT,
        train_tasks=TASKS,
        low_reward_rollouts=[],
        evaluate=evaluate,
        critic=critic,
        config=config,
        report=report,
        should_stop=should_stop or (lambda: False),  # type: ignore[arg-type]
        workdir=Path(settings.rl_artifacts_dir) / name,
    )
    return ctx, reports


def test_converted_model_is_a_plain_checkpoint(settings: Settings) -> None:
    """The GGUF re-saved as safetensors without the quantization config TRL refuses."""
    path = prepare_hf_model("smollm2-135m", settings.local_model_dir)
    config = json.loads((path / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["model_type"] == "llama"
    assert json.loads((path / MARKER).read_text())["gguf_sha256"] == get_spec("smollm2-135m").sha256
    assert (path / "model.safetensors").is_file() and (path / "tokenizer.json").is_file()
    assert prepare_hf_model("smollm2-135m", settings.local_model_dir) == path  # once


@pytest.fixture(scope="module")
def trained(settings: Settings) -> tuple[OptimiserResult, list[tuple[int, dict[str, float]]]]:
    ctx, reports = _context(settings, "exp-tiny", config=TINY)
    result = asyncio.run(GrpoOptimiser().optimise(ctx))
    return result, reports


def test_grpo_trains_a_lora_adapter_and_returns_it(
    trained: tuple[OptimiserResult, list[tuple[int, dict[str, float]]]], settings: Settings
) -> None:
    result, reports = trained
    adapter = Path(str(result.best.adapter))
    assert adapter.parent == Path(settings.rl_artifacts_dir) / "exp-tiny"
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    assert json.loads((adapter / ADAPTER_META).read_text())["base_model"] == "smollm2-135m"
    assert result.best.system_prompt == INCUMBENT.system_prompt
    entry = result.candidates[0]
    assert entry["steps"] == 2 and entry["stopped"] is False and entry["device"] == "cpu"
    assert 0.0 <= result.best_score <= 1.0 and 0.0 <= result.incumbent_score <= 1.0
    # Progress streamed per step, with the group reward, then the before/after measurements and scores.
    steps = [step for step, metrics in reports if "reward" in metrics]
    assert steps == [1, 2]
    keys = set().union(*(metrics for _, metrics in reports))
    assert {"reward", "loss", "reward_before", "reward_after", "candidate_score", "incumbent_score"} <= keys


async def test_adapter_is_served_through_the_runtime_provider(
    trained: tuple[OptimiserResult, list[tuple[int, dict[str, float]]]], settings: Settings
) -> None:
    result, _ = trained
    config = {"provider": "local", "adapter": result.best.adapter}
    factory = ProviderFactory(settings)
    provider = factory.for_agent(config)
    assert isinstance(provider, TransformersProvider)
    pieces: list[str] = []
    response = await provider.complete(
        LLMRequest(messages=[ChatMessage("user", "Say hello.")], temperature=0.0, max_tokens=6),
        on_token=pieces.append,
    )
    assert response.content and response.provider == "transformers"
    assert (
        response.model
        == factory.model_for(config)
        == f"smollm2-135m-instruct+lora:{Path(str(result.best.adapter)).name}"
    )
    assert 0 < response.usage.completion_tokens <= 6 and response.usage.prompt_tokens > 0
    assert "".join(pieces).strip() == response.content.strip()


def test_stop_request_is_honoured_between_steps(settings: Settings) -> None:
    """Stop asked after the first step's report: training ends there, the incumbent is returned."""
    holder: dict[str, list[tuple[int, dict[str, float]]]] = {}

    def should_stop() -> bool:
        return any("reward" in metrics for _, metrics in holder["reports"])

    config = {**TINY, "max_steps": 50, "measure": False}
    ctx, reports = _context(settings, "exp-stop", config=config, should_stop=should_stop)
    holder["reports"] = reports
    result = asyncio.run(GrpoOptimiser().optimise(ctx))
    entry = result.candidates[0]
    assert entry["stopped"] is True and 1 <= entry["steps"] < 50
    assert result.best == INCUMBENT
    # The partial adapter is kept on disk (for inspection), marked as stopped.
    meta = json.loads((Path(entry["adapter"]) / ADAPTER_META).read_text())
    assert meta["stopped"] is True
