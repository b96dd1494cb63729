"""What one wrapped call applies: the resources (promoted, with the rollout's bandit variant), the
metadata of the rollout it records, and whether it goes through the platform's gateway.

* **Variant**: for an agent that runs a bandit, each rollout gets one variant. A call outside any
  ``client.rollout()`` block is a rollout of its own and draws its variant (task type ``default``);
  inside a block the first call of the agent draws it for the whole block (task type: the block's
  ``metadata["task_type"]``), and the block's metadata records ``variant`` and ``task_type`` at once,
  so the rewards of the rollout update that arm on the platform. A block that names a declared
  variant in its metadata keeps it (as a task's context may); an undeclared name applies none. A
  block that already belongs to another agent gets no variant from this one.
* **Gateway**: when the agent's resources report a LoRA ``adapter`` (a promoted ``grpo``
  candidate), only the platform can serve it: the call goes to the platform's
  ``/v1/chat/completions`` with ``X-Agent-Id`` (and ``X-Agent-Apply: adapter``: the SDK has applied
  prompt, model and temperature itself) and ``X-Rollout-Id`` (the gateway records the call into the
  SDK's rollout).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from agentlightning.sdk.models import AgentResources
from agentlightning.sdk.rollout import Rollout
from agentlightning.sdk.variants import BanditSnapshot, task_type_of
from agentlightning.thompson import DEFAULT_TASK_TYPE

#: What the SDK sends in ``X-Agent-Apply``: serve the agent's adapter, apply nothing else.
APPLY_ADAPTER = "adapter"


@dataclass(frozen=True)
class GatewayRoute:
    """How to reach the platform's OpenAI-compatible gateway for one agent."""

    base_url: str  # ``<platform>/v1``
    api_key: str  # the SDK client's API key (or bearer token): OpenAI clients send it as a bearer
    headers: dict[str, str]  # ``X-Agent-Id`` and ``X-Agent-Apply``

    def call_headers(self, rollout: Rollout | None) -> dict[str, str]:
        """The headers of one call (with the rollout it records into)."""
        return {**self.headers, "X-Rollout-Id": rollout.id} if rollout is not None else dict(self.headers)


@dataclass(frozen=True)
class CallPlan:
    """What one wrapped call applies (``None`` fields: nothing)."""

    resources: AgentResources | None = None
    #: The metadata of the call's own rollout (when it makes one): ``variant`` and ``task_type``.
    metadata: dict[str, Any] | None = None
    gateway: GatewayRoute | None = None


NOTHING = CallPlan()
_tag_lock = threading.Lock()


def plan_call(
    agent_id: int | None,
    resources: AgentResources | None,
    bandit: BanditSnapshot | None,
    gateway: GatewayRoute | None,
    current: Rollout | None,
) -> CallPlan:
    """The plan of one call of agent ``agent_id`` made inside ``current`` (a ``client.rollout()``
    block, or ``None``); see the module docstring."""
    if resources is None or agent_id is None:
        return NOTHING
    metadata: dict[str, Any] | None = None
    name: str | None = None
    if bandit is not None:
        if current is None:
            name = bandit.choose(DEFAULT_TASK_TYPE)
            metadata = {"variant": name, "task_type": DEFAULT_TASK_TYPE}
        else:
            name = _block_variant(agent_id, bandit, current)
    if name is not None and bandit is not None:
        resources = bandit.apply(resources, name)
    return CallPlan(resources, metadata, gateway if resources.adapter else None)


def _block_variant(agent_id: int, bandit: BanditSnapshot, block: Rollout) -> str | None:
    """The variant of a ``client.rollout()`` block: the one it has, or one drawn (and recorded) now."""
    with _tag_lock:
        if block.agent_id not in (None, agent_id):
            return None
        named = block.metadata.get("variant")
        if named is not None:
            return named if isinstance(named, str) and named in bandit.variants else None
        task_type = task_type_of(block.metadata)
        name = bandit.choose(task_type)
        block.agent_id = agent_id
        block.tag({"variant": name, "task_type": task_type})
        return name
