"""A scripted OpenAI-compatible chat-completions server for tests and benchmarks.

It is a real HTTP server (uvicorn in a background thread) answering ``POST
/v1/chat/completions`` and ``GET /v1/models``, so the platform's real provider (the ``openai``
SDK) is exercised end to end.  Replies come from a *script*: a function of the request body
returning ``{"content": ...}`` or ``{"tool_calls": [{"name": ..., "arguments": {...}}]}``.

The default script behaves like a tiny tool-using model:

* the last message is a tool result -> a final answer quoting it: ``"Result: <tool output>"``;
* the user asks ``calculate: <expr>`` and a ``calculator`` tool is offered -> a calculator call;
* ``python: <code>`` with a ``python`` tool -> a python call; ``remember: <text>`` -> memory;
* otherwise -> ``"Answer: <task>"``.

Usage::

    with FakeLLMServer(delay_s=0.05) as llm:
        settings = make_settings(..., llm_base_url=llm.base_url)

``"stream": true`` is answered with server-sent ``chat.completion.chunk`` events (and the usage
chunk when ``stream_options.include_usage`` asks for it), as OpenAI streams. Every request body
is kept in ``requests`` and its ``Authorization`` header in ``authorizations``.

Run standalone (for benchmarks or manual tests)::

    python -m tests.fake_llm_server --port 9999 --delay 0
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

Script = Callable[[dict[str, Any]], dict[str, Any]]


def _last(messages: list[dict[str, Any]], role: str) -> dict[str, Any] | None:
    for msg in reversed(messages):
        if msg.get("role") == role:
            return msg
    return None


def default_script(body: dict[str, Any]) -> dict[str, Any]:
    """The built-in deterministic 'model' described in the module docstring."""
    messages = body.get("messages", [])
    tools = {t["function"]["name"] for t in body.get("tools") or []}
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        return {"content": f"Result: {last.get('content', '')}"}
    user = _last(messages, "user") or {"content": ""}
    text = str(user.get("content", "")).split("\n\nContext:")[0].strip()
    for prefix, tool, key in (
        ("calculate:", "calculator", "expression"),
        ("python:", "python", "code"),
        ("search:", "knowledge_search", "query"),
    ):
        if text.lower().startswith(prefix) and tool in tools:
            return {"tool_calls": [{"name": tool, "arguments": {key: text[len(prefix) :].strip()}}]}
    if text.lower().startswith("remember:") and "memory" in tools:
        return {"tool_calls": [{"name": "memory", "arguments": {"action": "remember", "content": text[9:].strip()}}]}
    if text.lower().startswith("recall:") and "memory" in tools:
        return {"tool_calls": [{"name": "memory", "arguments": {"action": "recall", "query": text[7:].strip()}}]}
    if text.lower().startswith("loop:") and tools:
        name = sorted(tools)[0]
        args = {"operation": "now"} if name == "datetime" else {"expression": "1+1"}
        return {"tool_calls": [{"name": name, "arguments": args}]}
    return {"content": f"Answer: {text}"}


class FakeLLMServer:
    """The server; a context manager that starts and stops it."""

    def __init__(
        self,
        script: Script | None = None,
        *,
        delay_s: float = 0.0,
        fail_first: int = 0,
        fail_status: int = 500,
        retry_after: str | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        native_tools: bool = True,
    ) -> None:
        self.script = script or default_script
        self.delay_s = delay_s
        self.fail_first = fail_first
        #: The status of the scripted failures, and the ``Retry-After`` they carry (if any).
        self.fail_status = fail_status
        self.retry_after = retry_after
        self.native_tools = native_tools
        self.requests: list[dict[str, Any]] = []
        #: The ``Authorization`` header of every request (which key reached this server).
        self.authorizations: list[str | None] = []
        self._lock = threading.Lock()
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets created with it, and
        # without TCP_NODELAY a reply on a kept-alive connection waits ~44 ms for Nagle's timer.
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host, self.port = self._sock.getsockname()[:2]
        self.base_url = f"http://{self.host}:{self.port}/v1"
        self._server = uvicorn.Server(
            uvicorn.Config(self._app(), log_level="warning", access_log=False, lifespan="off")
        )
        self._thread = threading.Thread(target=self._serve, name="fake-llm", daemon=True)

    def _serve(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._sock]))

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/v1/models")
        async def models() -> dict[str, Any]:
            return {"object": "list", "data": [{"id": "fake-model", "object": "model", "owned_by": "tests"}]}

        @app.post("/v1/chat/completions")
        async def completions(request: Request) -> Any:
            body = await request.json()
            with self._lock:
                self.requests.append(body)
                self.authorizations.append(request.headers.get("authorization"))
                n = len(self.requests)
            if n <= self.fail_first:
                return JSONResponse(
                    {"error": {"message": "scripted failure", "type": "server_error"}},
                    status_code=self.fail_status,
                    headers={"Retry-After": self.retry_after} if self.retry_after else None,
                )
            if body.get("tools") and not self.native_tools:
                return JSONResponse(
                    {"error": {"message": "tools are not supported by this model", "type": "invalid_request_error"}},
                    status_code=400,
                )
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            completion = self._completion(body, self.script(body))
            if body.get("stream"):
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                return StreamingResponse(self._chunks(completion, include_usage), media_type="text/event-stream")
            return completion

        return app

    @staticmethod
    def _completion(body: dict[str, Any], reply: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.get("content")}
        finish = "stop"
        if reply.get("tool_calls"):
            finish = "tool_calls"
            message["tool_calls"] = [
                {
                    "id": f"call_{uuid.uuid4().hex[:10]}",
                    "type": "function",
                    "function": {"name": c["name"], "arguments": json.dumps(c.get("arguments", {}))},
                }
                for c in reply["tool_calls"]
            ]
        prompt_tokens = sum(len(str(m.get("content") or "").split()) for m in body.get("messages", []))
        completion_tokens = len(str(reply.get("content") or "").split()) + 5 * len(reply.get("tool_calls") or [])
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake-model"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    @staticmethod
    async def _chunks(completion: dict[str, Any], include_usage: bool) -> Any:
        """The completion as OpenAI streams it: a role chunk, content word by word, tool calls,
        the finish reason, the usage chunk when asked for, then ``[DONE]``."""
        base = {k: completion[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
        message = completion["choices"][0]["message"]

        def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return b"data: " + json.dumps({**base, "choices": [choice]}).encode() + b"\n\n"

        yield event({"role": "assistant", "content": ""})
        words = str(message.get("content") or "").split(" ")
        for i, word in enumerate(words if message.get("content") else []):
            yield event({"content": word if i == 0 else " " + word})
        for index, call in enumerate(message.get("tool_calls") or []):
            yield event({"tool_calls": [{"index": index, **call}]})
        yield event({}, completion["choices"][0]["finish_reason"])
        if include_usage:
            yield b"data: " + json.dumps({**base, "choices": [], "usage": completion["usage"]}).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"

    def start(self) -> FakeLLMServer:
        """Start serving; returns once the server accepts requests."""
        self._thread.start()
        deadline = time.time() + 10
        while not self._server.started:
            if time.time() > deadline:
                raise RuntimeError("fake LLM server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.should_exit = True
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    """Run the default script standalone until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    with FakeLLMServer(host=args.host, port=args.port, delay_s=args.delay) as server:
        print(server.base_url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
