"""``enable_rl_training()``: find or register the wrapped agent on the platform and keep its
currently promoted resources (system prompt, model, temperature, adapter) and, for an agent that
runs a bandit, its variants and posteriors at hand for the wrappers (:meth:`TrainingLink.plan`
says what one call applies: see :mod:`agentlightning.sdk.plan`).

What is applied is what the platform has *set* for the agent: a field of
``GET /api/v2/agents/{id}/resources`` is applied only when the agent's configuration holds it
(``config.system_prompt``, ``config.model``, ``config.temperature``: what a registration with
those values, an update through the API or an Auto-RL promotion sets). A field the platform only
defaults (its generic system prompt, its default temperature) leaves the agent's own value alone,
so enabling RL training changes nothing until the platform decides something.

A daemon thread refreshes the resources (and the bandit) every ``refresh_interval`` seconds;
``refresh()`` does it now. The platform being down never fails the agent: the last known resources (or none, meaning
"leave the calls as they are") stay in force and the next refresh tries again.
"""

from __future__ import annotations

import logging
import random
import threading
from typing import Any

from agentlightning.sdk.client import Client
from agentlightning.sdk.models import AgentInfo, AgentResources, PlatformError
from agentlightning.sdk.plan import APPLY_ADAPTER, NOTHING, CallPlan, GatewayRoute, plan_call
from agentlightning.sdk.rollout import current_rollout
from agentlightning.sdk.variants import BanditSnapshot

logger = logging.getLogger("agentlightning.sdk")


APPLIED_FIELDS = ("system_prompt", "model", "temperature")


def applied_resources(reported: AgentResources, config: dict[str, Any]) -> AgentResources:
    """``reported`` with the applied fields the agent's ``config`` does not set cleared."""
    cleared = {name: None for name in APPLIED_FIELDS if config.get(name) in (None, "")}
    return reported.model_copy(update=cleared)


def runs_bandit(agent: AgentInfo) -> bool:
    """Whether the agent's configuration turns its online bandit on (then its arms are fetched)."""
    bandit = agent.config.get("bandit")
    return isinstance(bandit, dict) and bool(bandit.get("enabled"))


def gateway_route(client: Client, agent_id: int) -> GatewayRoute | None:
    """The platform's gateway for ``agent_id`` with the client's credentials (``None`` without any)."""
    credential = client.api_key or client.token
    if not credential:
        return None
    headers = {"X-Agent-Id": str(agent_id), "X-Agent-Apply": APPLY_ADAPTER}
    return GatewayRoute(f"{client.base_url}/v1", credential, headers)


class TrainingLink:
    """One wrapper's link to its agent on the platform: the agent's id and its resources."""

    def __init__(
        self,
        client: Client,
        agent_name: str,
        *,
        register: dict[str, Any] | None = None,
        refresh_interval: float = 30.0,
    ) -> None:
        self.client = client
        self.agent_name = agent_name
        self.register = dict(register or {})
        self.refresh_interval = refresh_interval
        self.agent_id: int | None = None
        #: The resources as the platform reports them.
        self.reported: AgentResources | None = None
        #: What the wrappers apply: the reported fields the agent's configuration sets.
        self.resources: AgentResources | None = None
        #: The agent's variants and posteriors (``None``: it runs no bandit).
        self.bandit: BanditSnapshot | None = None
        #: The variants' draws (one generator for the link's life: seed it to replay them).
        self.rng = random.Random()
        #: The platform's gateway while an adapter serves the agent (``None``: call directly).
        self.gateway: GatewayRoute | None = None
        self._warned_credential = False
        self.last_error: str | None = None
        self.refreshed = threading.Event()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> AgentResources | None:
        """Resolve the agent if needed and fetch its resources now; on failure keep the last ones
        (``last_error`` says why) and return them."""
        with self._lock:
            try:
                if self.agent_id is None:
                    agent = self.client.ensure_agent(self.agent_name, **self.register)
                    self.agent_id = agent.id
                else:
                    agent = self.client.get_agent(self.agent_id)
                reported = self.client.agent_resources(self.agent_id)
                bandit = (
                    BanditSnapshot.of(self.client.agent_bandit(self.agent_id), self.rng) if runs_bandit(agent) else None
                )
                self.reported = reported
                self.resources = applied_resources(reported, agent.config)
                self.bandit = bandit
                self.gateway = self._gateway_for(reported)
                self.last_error = None
            except PlatformError as exc:
                self.last_error = str(exc)
                logger.warning("agentlightning: could not refresh agent %r: %s", self.agent_name, exc)
            except Exception as exc:  # never let a refresh fail the agent
                self.last_error = f"{type(exc).__name__}: {exc}"
                logger.warning("agentlightning: could not refresh agent %r", self.agent_name, exc_info=True)
            finally:
                self.refreshed.set()
            return self.resources

    def _gateway_for(self, reported: AgentResources) -> GatewayRoute | None:
        """The gateway route when an adapter serves the agent (warned once when the client has no
        credential to call it with)."""
        if not reported.adapter or self.agent_id is None:
            return None
        route = gateway_route(self.client, self.agent_id)
        if route is None and not self._warned_credential:
            self._warned_credential = True
            logger.warning(
                "agentlightning: agent %r is served with an adapter, which only the platform's gateway can"
                " serve, and the client has no API key or token: its calls go out unchanged",
                self.agent_name,
            )
        return route

    def plan(self) -> CallPlan:
        """What a call made now applies (see :mod:`agentlightning.sdk.plan`)."""
        if self.resources is None:
            return NOTHING
        return plan_call(self.agent_id, self.resources, self.bandit, self.gateway, current_rollout())

    def adapter_gone(self) -> None:
        """The gateway says the agent has no adapter any more: call directly until the next refresh."""
        self.gateway = None

    def start(self) -> None:
        """Refresh now (in the background) and then every ``refresh_interval`` seconds."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._run, name=f"agentlightning-resources-{self.agent_name}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            if self._stop.wait(self.refresh_interval if self.refresh_interval > 0 else 3600.0):
                return

    def stop(self) -> None:
        """Stop refreshing in the background."""
        self._stop.set()
