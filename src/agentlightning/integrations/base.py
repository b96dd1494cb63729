"""What every wrapper shares: the platform client, the recorder, and ``enable_rl_training()``."""

from __future__ import annotations

import logging
import os
from typing import Any, TypeVar

from agentlightning.sdk.client import Client, default_client
from agentlightning.sdk.models import AgentResources
from agentlightning.sdk.plan import NOTHING, CallPlan
from agentlightning.sdk.recorder import Recorder
from agentlightning.sdk.training import TrainingLink

logger = logging.getLogger("agentlightning.sdk")

W = TypeVar("W", bound="TrainableWrapper")


class TrainableWrapper:
    """Base of the wrappers: records to ``client`` (default: the client built from the
    environment) and, after :meth:`enable_rl_training`, applies the agent's promoted resources."""

    #: The agent name ``enable_rl_training()`` uses when given none.
    default_agent_name = "sdk-agent"

    def __init__(self, client: Client | None = None) -> None:
        self._al_client = client
        self._al_link: TrainingLink | None = None

    @property
    def platform(self) -> Client:
        """The platform client this wrapper records to."""
        if self._al_client is None:
            self._al_client = default_client()
        return self._al_client

    @property
    def recorder(self) -> Recorder:
        """The background sender of this wrapper's rollouts."""
        return self.platform.recorder

    @property
    def agent_id(self) -> int | None:
        """The platform's id of the wrapped agent, once ``enable_rl_training()`` resolved it."""
        return self._al_link.agent_id if self._al_link is not None else None

    @property
    def resources(self) -> AgentResources | None:
        """The promoted resources in force (``None`` until fetched, or without RL training)."""
        return self._al_link.resources if self._al_link is not None else None

    def plan(self) -> CallPlan:
        """What a call made now applies: the resources (with the rollout's bandit variant), the
        metadata of its own rollout, and the gateway route when only the platform can serve the
        agent (see :mod:`agentlightning.sdk.plan`). Never raises."""
        link = self._al_link
        if link is None:
            return NOTHING
        try:
            return link.plan()
        except Exception:
            logger.debug("agentlightning: could not plan a call", exc_info=True)
            return NOTHING

    def enable_rl_training(
        self: W,
        agent_name: str | None = None,
        *,
        agent_type: str = "sdk",
        system_prompt: str | None = None,
        model: str | None = None,
        temperature: float | None = None,
        refresh_interval: float = 30.0,
        wait: float = 5.0,
    ) -> W:
        """Register this agent on the platform (or find it by name) and, from then on, apply its
        currently promoted resources (system prompt, model, temperature; a bandit's variant per
        rollout; the platform's gateway when an adapter serves the agent) to its calls.

        ``agent_name`` defaults to ``AGENTLIGHTNING_AGENT_NAME`` or the wrapper's default name;
        ``system_prompt``/``model``/``temperature`` are the agent's starting configuration when it
        is registered here. The resources are refreshed every ``refresh_interval`` seconds in the
        background and by :meth:`refresh`. Waits up to ``wait`` seconds for the first refresh
        (``0``: not at all); an unreachable platform is logged, never raised. Returns ``self``."""
        name = agent_name or os.environ.get("AGENTLIGHTNING_AGENT_NAME") or self.default_agent_name
        if self._al_link is not None:
            self._al_link.stop()
        register: dict[str, Any] = {"type": agent_type}
        register.update(
            {
                k: v
                for k, v in (("system_prompt", system_prompt), ("model", model), ("temperature", temperature))
                if v is not None
            }
        )
        self._al_link = TrainingLink(self.platform, name, register=register, refresh_interval=refresh_interval)
        self._al_link.start()
        if wait > 0 and not self._al_link.refreshed.wait(wait):
            logger.warning("agentlightning: agent %r not resolved within %.1f s; continuing without it", name, wait)
        return self

    def refresh(self) -> AgentResources | None:
        """Fetch the agent's promoted resources now (blocking); returns those in force."""
        if self._al_link is None:
            raise RuntimeError("call enable_rl_training() first")
        return self._al_link.refresh()

    async def arefresh(self) -> AgentResources | None:
        """:meth:`refresh` without blocking the event loop."""
        import asyncio

        return await asyncio.to_thread(self.refresh)

    def disable_rl_training(self) -> None:
        """Stop applying resources (calls go out as the agent makes them); recording goes on."""
        if self._al_link is not None:
            self._al_link.stop()
        self._al_link = None
