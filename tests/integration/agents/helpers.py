"""Helpers of the agent and task tests: create an agent over the API, wait for a task to finish."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.helpers import poll_until_finished


async def create_agent(client: httpx.AsyncClient, headers: dict[str, str], name: str, **body: Any) -> dict[str, Any]:
    """Create an agent through the API (type ``test_agent`` unless given)."""
    payload = {"name": name, **body}
    if "template" not in body:
        payload.setdefault("type", "test_agent")
    response = await client.post("/api/v2/agents", json=payload, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()["data"]


async def wait_for_task(
    client: httpx.AsyncClient, headers: dict[str, str], task_id: int, timeout: float = 30.0
) -> dict[str, Any]:
    """Poll a task until it is finished."""
    finished = ("completed", "failed", "cancelled")
    return await poll_until_finished(
        client, headers, f"/api/v2/tasks/{task_id}", finished, timeout, 0.05, f"task {task_id}"
    )


def save_tiny_adapter(root: Path) -> Path:
    """A LoRA adapter on SmolLM2 saved as ``grpo`` saves one, under ``root/exp/adapter``; returns ``root``
    (an ``RL_ARTIFACTS_DIR`` for the tests that serve an adapter)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from agentlightning.agents.llm.hf_models import prepare_hf_model
    from agentlightning.agents.llm.transformers_provider import ADAPTER_META

    base = AutoModelForCausalLM.from_pretrained(str(prepare_hf_model("smollm2-135m")), dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    adapter = root / "exp" / "adapter"
    model.save_pretrained(str(adapter))
    (adapter / ADAPTER_META).write_text('{"base_model": "smollm2-135m"}')
    return root
