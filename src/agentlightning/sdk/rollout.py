"""Rollouts on the client side: which rollout a wrapped call belongs to, and ``emit_reward``.

A *rollout* is one attempt of an agent at one job: its LLM and tool calls (spans) and the rewards
it earned. ``with client.rollout(...)`` (or ``@client.rollout()`` on a function) groups every
wrapped call made inside it into one rollout; outside such a block each wrapped call (one OpenAI
request, one LangChain ``invoke``, one AutoGen ``run``) is a rollout of its own. The current
rollout lives in a :class:`contextvars.ContextVar`, so it follows threads started with a copied
context and asyncio tasks created inside the block.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import logging
import math
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar, cast

from agentlightning.sdk.serialize import to_jsonable

if TYPE_CHECKING:
    from agentlightning.sdk.recorder import Recorder

logger = logging.getLogger("agentlightning.sdk")

F = TypeVar("F", bound=Callable[..., Any])


def new_id() -> str:
    """A fresh rollout/span id (32 hex characters)."""
    return uuid.uuid4().hex


def utc_now() -> str:
    """Now, as an ISO 8601 UTC timestamp."""
    return datetime.now(timezone.utc).isoformat()


class Rollout:
    """One rollout being recorded: spans and rewards go to ``recorder`` under ``id``.

    A *grouped* rollout (``client.rollout()``) announces itself when it starts, streams its spans
    as they happen and reports its status when it ends. A *single-call* rollout (a wrapped call
    outside any block) buffers its spans and is sent once, when the call ends.
    """

    def __init__(
        self,
        recorder: Recorder,
        *,
        rollout_id: str | None = None,
        agent_id: int | None = None,
        input: Any = None,
        metadata: dict[str, Any] | None = None,
        buffered: bool = False,
    ) -> None:
        self.id = rollout_id or new_id()
        self.recorder = recorder
        self.agent_id = agent_id
        self.input = to_jsonable(input) if input is not None else None
        self.metadata = dict(metadata or {})
        self.output: Any = None
        self.status: str | None = None
        self._buffered = buffered
        self._spans: list[dict[str, Any]] = []
        self._rewards: list[dict[str, Any]] = []
        self._finished = False
        self.started = time.monotonic()

    def _header(self) -> dict[str, Any]:
        header: dict[str, Any] = {"id": self.id, "source": "sdk"}
        if self.agent_id is not None:
            header["agent_id"] = self.agent_id
        if self.input is not None:
            header["input"] = self.input
        if self.metadata:
            header["metadata"] = self.metadata
        return header

    def start(self) -> None:
        """Announce a grouped rollout (status ``running``)."""
        if not self._buffered:
            self.recorder.enqueue({**self._header(), "status": "running", "spans": [], "rewards": []})

    def add_span(self, span: dict[str, Any], *, agent_id: int | None = None) -> None:
        """Record one span (see :func:`llm_span`) of this rollout."""
        if agent_id is not None and self.agent_id is None:
            self.agent_id = agent_id
        if self._buffered and not self._finished:
            self._spans.append(span)
            return
        update: dict[str, Any] = {"id": self.id, "source": "sdk", "spans": [span], "rewards": []}
        if self.agent_id is not None:
            update["agent_id"] = self.agent_id
        self.recorder.enqueue(update)

    def tag(self, metadata: dict[str, Any]) -> None:
        """Add ``metadata`` to the rollout's (a grouped rollout sends it now, before any reward of
        it, so the platform reads it with them)."""
        self.metadata.update(metadata)
        if self._buffered and not self._finished:
            return
        update: dict[str, Any] = {
            "id": self.id,
            "source": "sdk",
            "metadata": dict(metadata),
            "spans": [],
            "rewards": [],
        }
        if self.agent_id is not None:
            update["agent_id"] = self.agent_id
        self.recorder.enqueue(update)

    def add_reward(
        self,
        value: float,
        *,
        span_id: str | None = None,
        name: str | None = None,
        comment: str | None = None,
    ) -> None:
        """Attach a reward to this rollout (or to one of its spans)."""
        reward: dict[str, Any] = {"value": float(value)}
        if span_id is not None:
            reward["span_id"] = span_id
        if name is not None:
            reward["name"] = name
        if comment is not None:
            reward["comment"] = comment
        if self._buffered and not self._finished:
            self._rewards.append(reward)
            return
        self.recorder.enqueue({"id": self.id, "source": "sdk", "spans": [], "rewards": [reward]})

    def finish(self, status: str = "completed", output: Any = None) -> None:
        """End the rollout with ``status`` (``completed`` or ``failed``) and an optional output."""
        if self._finished:
            return
        self._finished = True
        self.status = status
        if output is not None:
            self.output = to_jsonable(output)
        update = {**self._header(), "status": status, "spans": self._spans, "rewards": self._rewards}
        if self.output is not None:
            update["output"] = self.output
        self._spans, self._rewards = [], []
        self.recorder.enqueue(update)


#: The grouped rollout the running code is inside, if any.
_current: contextvars.ContextVar[Rollout | None] = contextvars.ContextVar("agentlightning_rollout", default=None)
#: The last single-call rollout finished in this context (what a bare ``emit_reward`` rewards).
_last: contextvars.ContextVar[Rollout | None] = contextvars.ContextVar("agentlightning_last_rollout", default=None)


def current_rollout() -> Rollout | None:
    """The grouped rollout the running code is inside, or ``None``."""
    return _current.get()


def begin_call(
    recorder: Recorder, *, agent_id: int | None = None, input: Any = None, metadata: dict[str, Any] | None = None
) -> tuple[Rollout, bool]:
    """The rollout one wrapped call records into, and whether the call owns it: the current grouped
    rollout (not owned), or a new single-call rollout with ``metadata`` (owned: end it with
    :func:`end_call`)."""
    current = _current.get()
    if current is not None:
        if agent_id is not None and current.agent_id is None:
            current.agent_id = agent_id
        return current, False
    return Rollout(recorder, agent_id=agent_id, input=input, metadata=metadata, buffered=True), True


def end_call(rollout: Rollout, owned: bool, *, failed: bool = False, output: Any = None) -> None:
    """End a call's rollout if the call owns it (sent now, ``failed`` if the call raised) and make
    it the one a bare ``emit_reward`` rewards. Never raises."""
    if not owned:
        return
    try:
        rollout.finish("failed" if failed else (rollout.status or "completed"), output)
    except Exception:
        logger.debug("agentlightning: recording failed", exc_info=True)
    _last.set(rollout)


@contextlib.contextmanager
def active(rollout: Rollout) -> Iterator[Rollout]:
    """Make ``rollout`` the current one inside the block (calls made there record into it)."""
    token = _current.set(rollout)
    try:
        yield rollout
    finally:
        _current.reset(token)


@contextlib.contextmanager
def call_rollout(recorder: Recorder, *, agent_id: int | None = None, input: Any = None) -> Iterator[Rollout]:
    """``with``-form of :func:`begin_call`/:func:`end_call` for calls that end where they start;
    set ``rollout.output`` inside the block to record the call's output."""
    rollout, owned = begin_call(recorder, agent_id=agent_id, input=input)
    try:
        yield rollout
    except BaseException:
        end_call(rollout, owned, failed=True)
        raise
    end_call(rollout, owned, output=rollout.output)


def _safe(fn: Callable[..., Any], *args: Any) -> None:
    try:
        fn(*args)
    except Exception:
        logger.debug("agentlightning: recording failed", exc_info=True)


class RolloutBlock:
    """``with client.rollout(...) as r:`` / ``async with`` / ``@client.rollout()``: every wrapped
    call inside belongs to one rollout ``r`` (``r.id``; set ``r.output`` to record an output).

    As a decorator each call of the function is a rollout of its own."""

    def __init__(
        self,
        recorder_factory: Callable[[], Recorder],
        *,
        rollout_id: str | None = None,
        agent_id: int | None = None,
        input: Any = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._recorder_factory = recorder_factory
        self._kwargs: dict[str, Any] = {
            "rollout_id": rollout_id,
            "agent_id": agent_id,
            "input": input,
            "metadata": metadata,
        }
        self._stack: list[tuple[Rollout, contextvars.Token[Rollout | None]]] = []

    def _enter(self) -> Rollout:
        rollout = Rollout(self._recorder_factory(), **self._kwargs)
        _safe(rollout.start)
        self._stack.append((rollout, _current.set(rollout)))
        return rollout

    def _exit(self, failed: bool) -> None:
        rollout, token = self._stack.pop()
        _current.reset(token)
        _safe(rollout.finish, "failed" if failed else (rollout.status or "completed"), rollout.output)
        _last.set(rollout)

    def __enter__(self) -> Rollout:
        return self._enter()

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self._exit(exc_type is not None)

    async def __aenter__(self) -> Rollout:
        return self._enter()

    async def __aexit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self._exit(exc_type is not None)

    def __call__(self, fn: F) -> F:
        """Decorate ``fn`` so that each call is one rollout (its return value is the output)."""
        if self._kwargs["rollout_id"] is not None:
            raise ValueError("a decorator makes one rollout per call: do not give it a rollout_id")
        kwargs = {k: v for k, v in self._kwargs.items() if k != "rollout_id"}

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(*args: Any, **kw: Any) -> Any:
                async with RolloutBlock(self._recorder_factory, **kwargs) as rollout:
                    result = await fn(*args, **kw)
                    rollout.output = to_jsonable(result)
                    return result

            return cast(F, run_async)

        @functools.wraps(fn)
        def run(*args: Any, **kw: Any) -> Any:
            with RolloutBlock(self._recorder_factory, **kwargs) as rollout:
                result = fn(*args, **kw)
                rollout.output = to_jsonable(result)
                return result

        return cast(F, run)


def emit_reward(
    value: float,
    rollout_id: str | None = None,
    span_id: str | None = None,
    *,
    name: str | None = None,
    comment: str | None = None,
    client: Any = None,
) -> str | None:
    """Attach a reward to a rollout; returns the rollout's id, or ``None`` when there is none.

    Without ``rollout_id`` the reward goes to the current ``client.rollout()`` block, or else to
    the last wrapped call made in this context. ``span_id`` rewards one step of it. The reward is
    sent in the background like spans (never blocking). ``client`` chooses whose recorder sends
    a reward for an explicit ``rollout_id`` (default: the client built from the environment)."""
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("a reward must be a finite number")
    target = _current.get() if rollout_id is None else None
    if target is None and rollout_id is None:
        target = _last.get()
    if target is not None:
        target.add_reward(number, span_id=span_id, name=name, comment=comment)
        return target.id
    if rollout_id is None:
        logger.warning("emit_reward: no current rollout (call it inside client.rollout() or after a wrapped call)")
        return None
    if client is None:
        from agentlightning.sdk.client import default_client

        client = default_client()
    Rollout(client.recorder, rollout_id=rollout_id).add_reward(number, span_id=span_id, name=name, comment=comment)
    return rollout_id
