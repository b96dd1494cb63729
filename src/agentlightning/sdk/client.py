"""``Client`` and ``AsyncClient``: a small typed client of the platform's API for agents' code.

Both speak the same endpoints (agents, resources, tasks, rollouts, rewards, feedback) with
``httpx``; they authenticate with an API key (``X-API-Key``) or a bearer token. Their
``recorder`` sends what the wrappers record in the background (see
:mod:`agentlightning.sdk.recorder`), and ``rollout()`` groups wrapped calls into one rollout.

Configuration comes from the arguments or the environment: ``AGENTLIGHTNING_URL`` (default
``http://localhost:8000``), ``AGENTLIGHTNING_API_KEY``, ``AGENTLIGHTNING_TOKEN``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from agentlightning.sdk.models import (
    AgentInfo,
    AgentResources,
    BanditState,
    IngestResult,
    PlatformError,
    RewardInfo,
    RolloutInfo,
    TaskInfo,
)
from agentlightning.sdk.recorder import DeliveryError, Recorder
from agentlightning.sdk.rollout import RolloutBlock

DEFAULT_URL = "http://localhost:8000"
T = TypeVar("T")


def _identity(data: Any) -> Any:
    return data


@dataclass
class _Call:
    """One API request and how to read its envelope's ``data``."""

    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    parse: Callable[[Any], Any] = _identity
    #: The error codes for which the call answers ``None`` instead of raising.
    none_on: frozenset[str] = frozenset()


def _error_from(response: httpx.Response) -> PlatformError:
    try:
        body = response.json()
        error = body.get("error") or {}
        return PlatformError(
            response.status_code,
            str(error.get("code") or "HTTP_ERROR"),
            str(error.get("message") or response.reason_phrase),
            error.get("details") if isinstance(error.get("details"), dict) else None,
        )
    except (ValueError, AttributeError):
        return PlatformError(response.status_code, "HTTP_ERROR", response.text[:500] or response.reason_phrase)


def _read(call: _Call, response: httpx.Response) -> Any:
    if response.status_code >= 400:
        error = _error_from(response)
        if error.code in call.none_on:
            return None
        raise error
    try:
        data = response.json().get("data")
    except (ValueError, AttributeError) as exc:
        raise PlatformError(response.status_code, "INVALID_RESPONSE", "the platform did not answer JSON") from exc
    return call.parse(data)


def _unreachable(exc: httpx.HTTPError) -> PlatformError:
    return PlatformError(0, "UNREACHABLE", f"{type(exc).__name__}: {exc}")


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


class _Api:
    """The requests both clients make; each method returns a :class:`_Call`."""

    @staticmethod
    def find_agent(name: str) -> _Call:
        return _Call(
            "GET",
            f"/api/v2/agents/{quote(name, safe='')}",
            parse=AgentInfo.model_validate,
            none_on=frozenset({"AGENT_NOT_FOUND", "NOT_FOUND"}),
        )

    @staticmethod
    def get_agent(agent: int | str) -> _Call:
        return _Call("GET", f"/api/v2/agents/{quote(str(agent), safe='')}", parse=AgentInfo.model_validate)

    @staticmethod
    def register_agent(
        name: str,
        type: str,
        description: str | None,
        system_prompt: str | None,
        model: str | None,
        temperature: float | None,
        config: dict[str, Any] | None,
    ) -> _Call:
        merged = {
            **(config or {}),
            **_drop_none({"system_prompt": system_prompt, "model": model, "temperature": temperature}),
        }
        body = _drop_none({"name": name, "type": type, "description": description, "config": merged})
        return _Call("POST", "/api/v2/agents", json=body, parse=AgentInfo.model_validate)

    @staticmethod
    def update_agent(agent: int | str, changes: dict[str, Any]) -> _Call:
        return _Call(
            "PUT", f"/api/v2/agents/{quote(str(agent), safe='')}", json=changes, parse=AgentInfo.model_validate
        )

    @staticmethod
    def resources(agent_id: int) -> _Call:
        return _Call("GET", f"/api/v2/agents/{agent_id}/resources", parse=AgentResources.model_validate)

    @staticmethod
    def bandit(agent: int | str) -> _Call:
        return _Call("GET", f"/api/v2/agents/{quote(str(agent), safe='')}/bandit", parse=BanditState.model_validate)

    @staticmethod
    def assign_task(
        task: str,
        agent_id: int | str | None,
        agent_type: str | None,
        priority: str,
        context: dict[str, Any] | None,
        session_id: str | None,
        idempotency_key: str | None,
    ) -> _Call:
        body = _drop_none(
            {
                "task": task,
                "agent_id": agent_id,
                "agent_type": agent_type,
                "priority": priority,
                "context": context,
                "session_id": session_id,
            }
        )
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return _Call("POST", "/api/v2/agents/assign", json=body, headers=headers, parse=TaskInfo.model_validate)

    @staticmethod
    def get_task(task_id: int) -> _Call:
        return _Call("GET", f"/api/v2/tasks/{int(task_id)}", parse=TaskInfo.model_validate)

    @staticmethod
    def feedback(task_id: int, score: float, comment: str | None) -> _Call:
        body = _drop_none({"score": score, "comment": comment})
        return _Call("POST", f"/api/v2/tasks/{int(task_id)}/feedback", json=body, parse=RewardInfo.model_validate)

    @staticmethod
    def ingest(rollouts: list[dict[str, Any]]) -> _Call:
        def parse(data: Any) -> IngestResult:
            if isinstance(data, list):
                return IngestResult(ids=[str(i) for i in data])
            return IngestResult.model_validate(data or {})

        return _Call("POST", "/api/v2/rollouts", json={"rollouts": rollouts}, parse=parse)

    @staticmethod
    def add_reward(rollout_id: str, value: float, span_id: str | None, name: str | None, comment: str | None) -> _Call:
        body = _drop_none({"value": value, "span_id": span_id, "name": name, "comment": comment})
        return _Call(
            "POST", f"/api/v2/rollouts/{quote(rollout_id, safe='')}/rewards", json=body, parse=RewardInfo.model_validate
        )

    @staticmethod
    def get_rollout(rollout_id: str) -> _Call:
        return _Call(
            "GET",
            f"/api/v2/rollouts/{quote(rollout_id, safe='')}",
            parse=RolloutInfo.model_validate,
            none_on=frozenset({"ROLLOUT_NOT_FOUND", "NOT_FOUND"}),
        )

    @staticmethod
    def list_rollouts(filters: dict[str, Any]) -> _Call:
        def parse(data: Any) -> list[RolloutInfo]:
            items = data.get("items", []) if isinstance(data, dict) else data or []
            return [RolloutInfo.model_validate(item) for item in items]

        return _Call("GET", "/api/v2/rollouts", params=_drop_none(filters), parse=parse)


class _Base:
    """What both clients share: configuration, credentials and the background recorder."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        recorder_options: dict[str, Any] | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        self.base_url = (base_url or os.environ.get("AGENTLIGHTNING_URL") or DEFAULT_URL).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("AGENTLIGHTNING_API_KEY")
        self.token = token if token is not None else os.environ.get("AGENTLIGHTNING_TOKEN")
        self.timeout = timeout
        self._recorder_options = dict(recorder_options or {})
        self._recorder: Recorder | None = recorder
        self._recorder_lock = threading.Lock()

    @property
    def headers(self) -> dict[str, str]:
        """The credentials sent with every request."""
        headers = {"User-Agent": "agentlightning-sdk"}
        if self.api_key:
            headers["X-API-Key"] = self.api_key
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    @property
    def recorder(self) -> Recorder:
        """The background sender of this client's rollouts (started on first use)."""
        if self._recorder is None:
            with self._recorder_lock:
                if self._recorder is None:
                    self._recorder = Recorder(self._make_sender(), **self._recorder_options)
        return self._recorder

    def _make_sender(self) -> Callable[[list[dict[str, Any]]], None]:
        """A function posting one batch, run on the recorder's thread with its own connection."""
        http = httpx.Client(
            base_url=self.base_url,
            headers=self.headers,
            timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 3.0)),
        )

        def send(batch: list[dict[str, Any]]) -> None:
            try:
                response = http.post("/api/v2/rollouts", json={"rollouts": batch})
            except httpx.HTTPError as exc:
                raise DeliveryError(str(_unreachable(exc)), transient=True) from exc
            if response.status_code >= 400:
                error = _error_from(response)
                raise DeliveryError(str(error), transient=error.transient, status=response.status_code)

        return send

    def rollout(
        self,
        *,
        rollout_id: str | None = None,
        agent_id: int | None = None,
        input: Any = None,
        metadata: dict[str, Any] | None = None,
    ) -> RolloutBlock:
        """Group the wrapped calls made inside ``with``/``async with`` (or each call of a decorated
        function) into one rollout; see :class:`agentlightning.sdk.rollout.RolloutBlock`."""
        return RolloutBlock(
            lambda: self.recorder, rollout_id=rollout_id, agent_id=agent_id, input=input, metadata=metadata
        )

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait (up to ``timeout`` seconds) until the recorder has sent what is queued."""
        return self._recorder.flush(timeout) if self._recorder is not None else True


class Client(_Base):
    """The synchronous client: ``Client(base_url, api_key=...)``.

    ``recorder_options`` tune the background recorder (``max_queue``, ``batch_interval``,
    ``max_attempts``, ``backoff_base``, ``backoff_max``, ``atexit_timeout``); ``recorder`` replaces
    it (e.g. one that sends elsewhere); ``transport`` is httpx's, for tests and proxies."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        recorder_options: dict[str, Any] | None = None,
        recorder: Recorder | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(
            base_url, api_key, token=token, timeout=timeout, recorder_options=recorder_options, recorder=recorder
        )
        self._http = httpx.Client(base_url=self.base_url, headers=self.headers, timeout=timeout, transport=transport)

    def _do(self, call: _Call) -> Any:
        try:
            response = self._http.request(
                call.method, call.path, params=call.params, json=call.json, headers=call.headers
            )
        except httpx.HTTPError as exc:
            raise _unreachable(exc) from exc
        return _read(call, response)

    def find_agent(self, name: str) -> AgentInfo | None:
        """The agent named ``name``, or ``None``."""
        return self._do(_Api.find_agent(name))

    def get_agent(self, agent: int | str) -> AgentInfo:
        """An agent by id or name."""
        return self._do(_Api.get_agent(agent))

    def register_agent(
        self,
        name: str,
        *,
        type: str = "sdk",
        description: str | None = None,
        system_prompt: str | None = None,
        model: str | None = None,
        temperature: float | None = None,
        config: dict[str, Any] | None = None,
    ) -> AgentInfo:
        """Register a new agent (``POST /api/v2/agents``; needs the ``agent:write`` permission)."""
        return self._do(_Api.register_agent(name, type, description, system_prompt, model, temperature, config))

    def ensure_agent(self, name: str, **register: Any) -> AgentInfo:
        """The agent named ``name``, registered with ``register``'s fields if it does not exist."""
        found = self.find_agent(name)
        if found is not None:
            return found
        try:
            return self.register_agent(name, **register)
        except PlatformError as exc:
            if exc.status != 409:
                raise
            return self.get_agent(name)  # registered meanwhile by another process

    def update_agent(self, agent: int | str, **changes: Any) -> AgentInfo:
        """Change an agent (``PUT /api/v2/agents/{id}``: ``config`` keys are merged)."""
        return self._do(_Api.update_agent(agent, changes))

    def agent_resources(self, agent_id: int) -> AgentResources:
        """The agent's currently promoted resources (prompt, model, temperature, ...)."""
        return self._do(_Api.resources(agent_id))

    def agent_bandit(self, agent: int | str) -> BanditState:
        """The agent's online bandit: its variants (with their overrides) and posteriors."""
        return self._do(_Api.bandit(agent))

    def assign_task(
        self,
        task: str,
        *,
        agent_id: int | str | None = None,
        agent_type: str | None = None,
        priority: str = "medium",
        context: dict[str, Any] | None = None,
        session_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> TaskInfo:
        """Queue a task for an agent (by id or name) or for the best agent of a type."""
        return self._do(_Api.assign_task(task, agent_id, agent_type, priority, context, session_id, idempotency_key))

    def get_task(self, task_id: int) -> TaskInfo:
        """One task with its status and result."""
        return self._do(_Api.get_task(task_id))

    def feedback(self, task_id: int, score: float, comment: str | None = None) -> RewardInfo:
        """Rate a task's result (stored as a ``feedback`` reward of its rollout)."""
        return self._do(_Api.feedback(task_id, score, comment))

    def ingest(self, rollouts: list[dict[str, Any]]) -> IngestResult:
        """Send rollouts (with spans and rewards) now, in this thread (the wrappers use the
        background recorder instead)."""
        return self._do(_Api.ingest(rollouts))

    def add_reward(
        self,
        rollout_id: str,
        value: float,
        *,
        span_id: str | None = None,
        name: str | None = None,
        comment: str | None = None,
    ) -> RewardInfo:
        """Attach a reward to a rollout now (``emit_reward`` does it in the background)."""
        return self._do(_Api.add_reward(rollout_id, value, span_id, name, comment))

    def get_rollout(self, rollout_id: str) -> RolloutInfo | None:
        """A rollout with its spans and rewards, or ``None`` if there is none (yet)."""
        return self._do(_Api.get_rollout(rollout_id))

    def list_rollouts(self, **filters: Any) -> list[RolloutInfo]:
        """A page of rollouts (filters: ``agent_id``, ``source``, ``status``, ``page``, ...)."""
        return self._do(_Api.list_rollouts(filters))

    def close(self, timeout: float | None = 5.0) -> None:
        """Flush the recorder (up to ``timeout``) and close the connections."""
        if self._recorder is not None:
            self._recorder.close(timeout)
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class AsyncClient(_Base):
    """The asyncio client: the same methods as :class:`Client`, awaited."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        recorder_options: dict[str, Any] | None = None,
        recorder: Recorder | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            base_url, api_key, token=token, timeout=timeout, recorder_options=recorder_options, recorder=recorder
        )
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=self.headers, timeout=timeout, transport=transport
        )

    async def _do(self, call: _Call) -> Any:
        try:
            response = await self._http.request(
                call.method, call.path, params=call.params, json=call.json, headers=call.headers
            )
        except httpx.HTTPError as exc:
            raise _unreachable(exc) from exc
        return _read(call, response)

    async def find_agent(self, name: str) -> AgentInfo | None:
        """The agent named ``name``, or ``None``."""
        return await self._do(_Api.find_agent(name))

    async def get_agent(self, agent: int | str) -> AgentInfo:
        """An agent by id or name."""
        return await self._do(_Api.get_agent(agent))

    async def register_agent(
        self,
        name: str,
        *,
        type: str = "sdk",
        description: str | None = None,
        system_prompt: str | None = None,
        model: str | None = None,
        temperature: float | None = None,
        config: dict[str, Any] | None = None,
    ) -> AgentInfo:
        """Register a new agent (needs the ``agent:write`` permission)."""
        return await self._do(_Api.register_agent(name, type, description, system_prompt, model, temperature, config))

    async def ensure_agent(self, name: str, **register: Any) -> AgentInfo:
        """The agent named ``name``, registered with ``register``'s fields if it does not exist."""
        found = await self.find_agent(name)
        if found is not None:
            return found
        try:
            return await self.register_agent(name, **register)
        except PlatformError as exc:
            if exc.status != 409:
                raise
            return await self.get_agent(name)

    async def update_agent(self, agent: int | str, **changes: Any) -> AgentInfo:
        """Change an agent (``config`` keys are merged)."""
        return await self._do(_Api.update_agent(agent, changes))

    async def agent_resources(self, agent_id: int) -> AgentResources:
        """The agent's currently promoted resources."""
        return await self._do(_Api.resources(agent_id))

    async def agent_bandit(self, agent: int | str) -> BanditState:
        """The agent's online bandit: its variants (with their overrides) and posteriors."""
        return await self._do(_Api.bandit(agent))

    async def assign_task(
        self,
        task: str,
        *,
        agent_id: int | str | None = None,
        agent_type: str | None = None,
        priority: str = "medium",
        context: dict[str, Any] | None = None,
        session_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> TaskInfo:
        """Queue a task for an agent (by id or name) or for the best agent of a type."""
        return await self._do(
            _Api.assign_task(task, agent_id, agent_type, priority, context, session_id, idempotency_key)
        )

    async def get_task(self, task_id: int) -> TaskInfo:
        """One task with its status and result."""
        return await self._do(_Api.get_task(task_id))

    async def feedback(self, task_id: int, score: float, comment: str | None = None) -> RewardInfo:
        """Rate a task's result (a ``feedback`` reward of its rollout)."""
        return await self._do(_Api.feedback(task_id, score, comment))

    async def ingest(self, rollouts: list[dict[str, Any]]) -> IngestResult:
        """Send rollouts (with spans and rewards) now."""
        return await self._do(_Api.ingest(rollouts))

    async def add_reward(
        self,
        rollout_id: str,
        value: float,
        *,
        span_id: str | None = None,
        name: str | None = None,
        comment: str | None = None,
    ) -> RewardInfo:
        """Attach a reward to a rollout now."""
        return await self._do(_Api.add_reward(rollout_id, value, span_id, name, comment))

    async def get_rollout(self, rollout_id: str) -> RolloutInfo | None:
        """A rollout with its spans and rewards, or ``None``."""
        return await self._do(_Api.get_rollout(rollout_id))

    async def list_rollouts(self, **filters: Any) -> list[RolloutInfo]:
        """A page of rollouts."""
        return await self._do(_Api.list_rollouts(filters))

    async def aflush(self, timeout: float | None = 10.0) -> bool:
        """:meth:`flush` without blocking the event loop."""
        import asyncio

        return await asyncio.to_thread(self.flush, timeout)

    async def aclose(self, timeout: float | None = 5.0) -> None:
        """Flush the recorder (in a thread, up to ``timeout``) and close the connections."""
        if self._recorder is not None:
            import asyncio

            await asyncio.to_thread(self._recorder.close, timeout)
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()


_default: Client | None = None
_default_lock = threading.Lock()


def default_client() -> Client:
    """The process-wide client built from the environment (used when a wrapper is given none)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Client()
    return _default
