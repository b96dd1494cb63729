"""``grpo`` without training: its config bounds, its registration, and how an adapter reaches the runtime."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentlightning.agents.llm import ProviderFactory, resolve_upstream, validate_llm_config
from agentlightning.agents.llm.base import LLMError
from agentlightning.agents.llm.transformers_provider import (
    ADAPTER_META,
    TransformersProvider,
    adapter_base_model,
    resolve_adapter,
)
from agentlightning.errors import ValidationFailed
from agentlightning.rl.optimisers.base import OPTIMISERS, VerifiableTask
from agentlightning.rl.optimisers.grpo import GrpoConfig, GrpoOptimiser, parse_config, usable_tasks
from agentlightning.rl.optimisers.grpo_train import completion_text, task_messages, verifier_reward
from agentlightning.rollouts.verifiers import register_verifier
from agentlightning.settings import Settings
from tests.helpers import make_settings


def _settings(tmp_path: Path) -> Settings:
    return make_settings("sqlite+aiosqlite:///:memory:", None, "t", rl_artifacts_dir=str(tmp_path / "rl"))


def test_grpo_is_registered() -> None:
    assert OPTIMISERS["grpo"] is GrpoOptimiser


def test_config_defaults_and_other_algorithms_keys_are_ignored() -> None:
    cfg = parse_config({"max_steps": 3, "rounds": 5, "beam_width": 2})
    assert cfg.max_steps == 3 and cfg.base_model == "smollm2-135m" and cfg.device == "auto"
    assert GrpoConfig().num_generations >= 2


@pytest.mark.parametrize(
    "bad",
    [
        {"max_steps": 0},
        {"num_generations": 1},
        {"learning_rate": 5.0},
        {"base_model": "../../etc/passwd"},
        {"target_modules": ["q_proj; rm -rf"]},
        {"device": "tpu"},
        {"max_completion_length": 10**6},
    ],
)
def test_config_out_of_bounds_is_a_validation_error(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_config(bad)
    assert info.value.details["errors"]


def test_reward_function_scores_each_completion_with_its_verifier() -> None:
    spec = json.dumps({"type": "numeric", "expected": 5})
    completions = [[{"role": "assistant", "content": "It is 5."}], [{"role": "assistant", "content": "7"}]]
    assert verifier_reward(completions, [spec, spec]) == [1.0, 0.0]
    assert completion_text("plain 5") == "plain 5"


def test_training_prompt_is_what_the_runtime_sends() -> None:
    messages = task_messages("Be brief.", {"prompt": "2+3?", "context": {"unit": "apples"}})
    assert messages[0] == {"role": "system", "content": "Be brief."}
    assert messages[1]["content"] == '2+3?\n\nContext:\n{"unit": "apples"}'


def test_adapter_must_live_under_the_rl_artifacts_dir(tmp_path: Path) -> None:
    root = tmp_path / "rl"
    assert resolve_adapter("exp1/adapter", root) == (root / "exp1" / "adapter").resolve()
    assert resolve_adapter(str(root / "exp2" / "adapter"), root) == (root / "exp2" / "adapter").resolve()
    for escape in ["../elsewhere", "/etc", str(tmp_path / "rl-sibling" / "adapter"), "exp/../../x"]:
        with pytest.raises(LLMError):
            resolve_adapter(escape, root)


def test_agent_config_with_an_adapter_is_validated_and_served_by_transformers(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    adapter = Path(settings.rl_artifacts_dir) / "exp" / "adapter"
    adapter.mkdir(parents=True)
    (adapter / ADAPTER_META).write_text(json.dumps({"base_model": "smollm2-135m"}))
    config = {"provider": "local", "adapter": str(adapter)}
    validate_llm_config(config, settings)
    assert resolve_upstream(config, settings).kind == "transformers"
    factory = ProviderFactory(settings)
    provider = factory.for_agent(config)
    assert isinstance(provider, TransformersProvider)
    assert provider.base_model == adapter_base_model(adapter) == "smollm2-135m"
    assert factory.model_for(config) == "smollm2-135m-instruct+lora:adapter"
    assert factory.for_agent(dict(config)) is provider  # built once per adapter
    # Without the adapter (a rollback) the agent is back on its own provider.
    assert factory.kind_for({"provider": "local"}) == "local"


@pytest.mark.parametrize("adapter", ["/etc", "../../secrets"])
def test_agent_config_cannot_point_the_server_at_other_files(tmp_path: Path, adapter: str) -> None:
    with pytest.raises(ValueError, match="RL_ARTIFACTS_DIR"):
        validate_llm_config({"adapter": adapter}, _settings(tmp_path))


def test_the_rest_of_an_adapter_agents_config_is_still_checked(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    with pytest.raises(ValueError, match="unknown provider"):
        validate_llm_config({"adapter": "exp/adapter", "provider": "nope"}, settings)


def test_tasks_need_a_verifier_the_training_process_can_run() -> None:
    numeric = VerifiableTask(id="n", prompt="1+1?", verifier={"type": "numeric", "expected": 2})
    python = VerifiableTask(id="p", prompt="?", verifier={"type": "python", "name": "grpo_test_check"})
    register_verifier("grpo_test_check")(lambda output, options: 1.0)
    assert usable_tasks([numeric, python]) == [numeric]
    with pytest.raises(ValidationFailed):
        usable_tasks([python])
    with pytest.raises(ValidationFailed):
        usable_tasks([VerifiableTask(id="bad", prompt="?", verifier={"type": "nope"})])
