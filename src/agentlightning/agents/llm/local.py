"""The embedded local model: a GGUF run on the CPU by llama.cpp (through the ``cyllama`` binding).

Which model is the ``LOCAL_MODEL`` setting (:mod:`agentlightning.agents.llm.local_models` has the
catalogue, the pinned wheels and the SHA-256 check).  The default, Qwen2.5-Coder-1.5B-Instruct,
calls tools natively: its own chat template lists the tools and it answers with
``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` blocks (several for parallel calls),
which become structured :class:`ToolCall` objects, exactly as the OpenAI-compatible provider
returns them.  A model whose template knows no tools (SmolLM2) gets the text protocol of
:mod:`agentlightning.agents.llm.text_tools` instead; the runtime never sees the difference.

Serving: the weights are loaded once per process (:func:`get_engine`) and shared by every
provider and agent.  Generation runs in dedicated threads, never on the event loop.  Requests go
through one FIFO queue to ``LOCAL_MODEL_PARALLEL`` generation slots (default 1), each a llama.cpp
context of its own over the shared weights.  One slot is the right default on a small CPU: a single
generation already keeps every core busy (llama.cpp threads its matrix products), so two at once
would each run at half speed, double the KV memory and still finish no sooner on average; a queue
also lets a slot keep its KV cache between requests, so the prompt prefix it already processed
(the system prompt and tools of an agent, the earlier turns of a tool loop) is not computed again.
Larger machines raise ``LOCAL_MODEL_PARALLEL``; the threads are split between the slots.

Tokens stream: :meth:`LocalLlamaProvider.stream` yields text pieces as they are generated, and
:meth:`LocalLlamaProvider.complete` takes an ``on_token`` callback.  Cancelling the awaiting task
stops its generation at the next token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from agentlightning.agents.llm.base import (
    ChatMessage,
    LLMError,
    LLMProvider,
    LLMRequest,
    LLMResponse,
    ToolCall,
    ToolSpec,
    Usage,
)
from agentlightning.agents.llm.local_models import DEFAULT_LOCAL_MODEL, get_spec, model_file
from agentlightning.agents.llm.text_tools import _decode_call, parse_tool_calls, to_text_protocol

log = logging.getLogger(__name__)

#: the model name of the default setting (kept for callers that only need a label)
LOCAL_MODEL_NAME = get_spec(DEFAULT_LOCAL_MODEL).name
_PREFILL_BATCH = 512


def cpu_count() -> int:
    """CPUs this process may run on (the affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """Threads of a generation when ``LOCAL_MODEL_THREADS`` is 0: every core but one (at least one).

    llama.cpp's threads wait for each other at every layer; when another process holds a core they
    spin while it runs.  On a shared 2-core machine two threads generated at 0.3-0.4 token/s against
    3-4 for one thread (measured under a load average of 12), so a core is left for the rest.
    """
    return max(1, cpu_count() - 1)


@dataclass(slots=True)
class Generation:
    """What one generation produced, with its timings."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    #: prompt tokens served from the slot's KV cache (not computed again)
    reused_tokens: int
    finish_reason: str
    prompt_seconds: float
    generation_seconds: float


@dataclass(slots=True)
class _Job:
    prompt: str
    max_tokens: int
    temperature: float
    seed: int
    on_piece: Callable[[str], None] | None
    #: called with the text so far (after ``stop_prefix``); True ends the generation ("stop")
    stop: Callable[[str], bool] | None = None
    stop_prefix: str = ""
    future: Future[Generation] = field(default_factory=Future)
    cancelled: threading.Event = field(default_factory=threading.Event)


class LlamaEngine:
    """One GGUF loaded once, served by ``parallel`` generation slots fed from one FIFO queue."""

    def __init__(self, path: Path, *, n_ctx: int = 4096, n_threads: int = 0, parallel: int = 1) -> None:
        from cyllama.llama import llama_cpp as ll

        self._ll = ll
        started = time.perf_counter()
        ll.disable_logging()
        ll.ggml_backend_load_all()
        params = ll.LlamaModelParams()
        params.n_gpu_layers = 0
        self.path = path
        self.model = ll.LlamaModel(str(path), params)
        self.vocab = self.model.get_vocab()
        self.n_ctx = n_ctx
        self.template_source: str = self.model.get_default_chat_template() or ""
        threads = n_threads or default_threads()
        per_slot = max(1, threads // parallel)
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._slots = [_Slot(self, n_ctx, per_slot, index) for index in range(parallel)]
        for slot in self._slots:
            slot.start()
        self.load_seconds = time.perf_counter() - started
        self._template: Any = None
        log.info(
            "local model %s loaded in %.1fs (%d slot(s) x %d thread(s), context %d)",
            path.name,
            self.load_seconds,
            parallel,
            per_slot,
            n_ctx,
        )

    # -- prompt ---------------------------------------------------------------------------------

    @property
    def native_tools(self) -> bool:
        """True when the model's own chat template renders ``tools`` and ``<tool_call>`` (Qwen2.5)."""
        return "tools" in self.template_source and "<tool_call>" in self.template_source

    def render(self, messages: list[ChatMessage], tools: list[ToolSpec], native_tools: bool | None = None) -> str:
        """The prompt text for a conversation, through the model's own chat template."""
        native = self.native_tools if native_tools is None else native_tools
        if native:
            rendered: list[dict[str, Any]] = [_native_message(m) for m in messages]
            tool_dicts: list[dict[str, Any]] | None = [t.to_openai() for t in tools] or None
        else:
            rendered, tool_dicts = to_text_protocol(messages, tools), None
        return str(
            self._compiled().render(
                messages=rendered,
                tools=tool_dicts,
                add_generation_prompt=True,
                bos_token=self._piece(self.vocab.token_bos()),
                eos_token=self._piece(self.vocab.token_eos()),
            )
        )

    def _piece(self, token: int) -> str:
        return self.vocab.token_to_piece(token, special=True) if token >= 0 else ""

    def _compiled(self) -> Any:
        if self._template is None:
            from jinja2.sandbox import ImmutableSandboxedEnvironment

            if not self.template_source:
                raise LLMError(f"local model {self.path.name} has no chat template")

            def raise_exception(message: str) -> None:
                raise LLMError(f"chat template: {message}")

            env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
            # As transformers renders chat templates: plain JSON, no HTML escaping.
            env.filters["tojson"] = lambda value, indent=None, **_: json.dumps(value, ensure_ascii=False, indent=indent)
            env.globals["raise_exception"] = raise_exception
            env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
            self._template = env.from_string(self.template_source)
        return self._template

    # -- generation -----------------------------------------------------------------------------

    def submit(
        self,
        prompt: str,
        *,
        max_tokens: int,
        temperature: float = 0.0,
        seed: int = 0,
        on_piece: Callable[[str], None] | None = None,
        stop: Callable[[str], bool] | None = None,
        stop_prefix: str = "",
    ) -> _Job:
        """Queue one generation; its ``future`` resolves to a :class:`Generation`."""
        job = _Job(prompt, max_tokens, temperature, seed, on_piece, stop, stop_prefix)
        self._queue.put(job)
        return job

    def generate(self, prompt: str, *, max_tokens: int, temperature: float = 0.0) -> Generation:
        """Blocking generation (benchmarks, scripts); the provider uses :meth:`submit`."""
        return self.submit(prompt, max_tokens=max_tokens, temperature=temperature).future.result()

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` (special tokens of the chat template parsed)."""
        return list(self.vocab.tokenize(text, add_special=True, parse_special=True))

    def close(self) -> None:
        """Stop the slots after the queued work (the weights are freed with the object)."""
        for _ in self._slots:
            self._queue.put(None)
        for slot in self._slots:
            slot.join(timeout=30)


class _Slot(threading.Thread):
    """One llama.cpp context (its own KV cache) that takes jobs from the engine's queue."""

    def __init__(self, engine: LlamaEngine, n_ctx: int, n_threads: int, index: int) -> None:
        super().__init__(name=f"local-llm-{index}", daemon=True)
        ll = engine._ll
        self.engine = engine
        self.ll = ll
        params = ll.LlamaContextParams()
        params.n_ctx = n_ctx
        params.n_batch = _PREFILL_BATCH
        params.n_threads = n_threads
        params.n_threads_batch = n_threads
        params.no_perf = True
        self.ctx = ll.LlamaContext(engine.model, params)
        self.n_ctx = n_ctx
        #: the tokens the KV cache holds, in order (sequence 0)
        self.cached: list[int] = []

    def run(self) -> None:
        while True:
            job = self.engine._queue.get()
            if job is None:
                return
            if job.cancelled.is_set() or not job.future.set_running_or_notify_cancel():
                continue
            try:
                job.future.set_result(self._generate(job))
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
                self.cached = []
                self.ctx.kv_cache_clear()
                job.future.set_exception(exc if isinstance(exc, LLMError) else LLMError(f"local generation: {exc}"))

    def _sampler(self, temperature: float, seed: int) -> Any:
        ll = self.ll
        params = ll.LlamaSamplerChainParams()
        params.no_perf = True
        sampler = ll.LlamaSampler(params)
        if temperature <= 0.0:
            sampler.add_greedy()
        else:
            sampler.add_min_p(0.05, 1)
            sampler.add_top_k(40)
            sampler.add_top_p(0.95, 1)
            sampler.add_temp(temperature)
            sampler.add_dist(seed or int(time.time_ns() & 0x7FFFFFFF))
        return sampler

    def _generate(self, job: _Job) -> Generation:
        ll, vocab, ctx = self.ll, self.engine.vocab, self.ctx
        started = time.perf_counter()
        tokens = self.engine.tokenize(job.prompt)
        room = self.n_ctx - len(tokens)
        if room < 16:
            raise LLMError(
                f"the prompt ({len(tokens)} tokens) does not fit the local model's context of {self.n_ctx} "
                "tokens (LOCAL_MODEL_CONTEXT); shorten the conversation or the tools"
            )
        max_tokens = min(job.max_tokens, room)
        # Reuse the longest prefix already in the KV cache; recompute at least the last token (logits).
        common = 0
        for a, b in zip(self.cached, tokens):
            if a != b:
                break
            common += 1
        common = min(common, len(tokens) - 1)
        if common < len(self.cached) and not ctx.memory_seq_rm(0, common, -1):
            ctx.kv_cache_clear()
            common = 0
        self.cached = tokens[:common]
        for start in range(common, len(tokens), _PREFILL_BATCH):
            if job.cancelled.is_set():
                raise LLMError("local generation cancelled")
            chunk = tokens[start : start + _PREFILL_BATCH]
            ctx.decode(ll.llama_batch_get_one(chunk, start))
            self.cached.extend(chunk)
        prefilled = time.perf_counter()
        sampler = self._sampler(job.temperature, job.seed)
        pieces: list[str] = []
        text = job.stop_prefix
        finish = "length"
        generated = 0
        for _ in range(max_tokens):
            if job.cancelled.is_set():
                finish = "cancelled"
                break
            token = sampler.sample(ctx, -1)
            if vocab.is_eog(token):
                finish = "stop"
                break
            piece = _decode_piece(vocab, token)
            if piece:
                pieces.append(piece)
                if job.on_piece is not None:
                    job.on_piece(piece)
            ctx.decode(ll.llama_batch_get_one([token], len(self.cached)))
            self.cached.append(token)
            generated += 1
            if piece and job.stop is not None:
                text += piece
                if job.stop(text):
                    finish = "stop"
                    break
        done = time.perf_counter()
        return Generation(
            text="".join(pieces),
            prompt_tokens=len(tokens),
            completion_tokens=generated,
            reused_tokens=common,
            finish_reason=finish,
            prompt_seconds=prefilled - started,
            generation_seconds=done - prefilled,
        )


def _decode_piece(vocab: Any, token: int) -> str:
    """Text of ``token`` ("" for a fragment of a character split across tokens, which is dropped)."""
    try:
        return str(vocab.token_to_piece(token, special=True))
    except UnicodeDecodeError:
        return ""


def _native_message(msg: ChatMessage) -> dict[str, Any]:
    """A message as the Qwen2.5 chat template expects it (tool calls with dict arguments)."""
    out: dict[str, Any] = {"role": msg.role, "content": msg.content or ""}
    if msg.tool_calls:
        out["tool_calls"] = [
            {
                "id": tc.id,
                "type": "function",
                "function": {
                    "name": tc.name,
                    "arguments": tc.arguments if tc.raw_arguments is None else tc.raw_arguments,
                },
            }
            for tc in msg.tool_calls
        ]
    if msg.role == "tool" and msg.name:
        out["name"] = msg.name
    return out


def tool_calls_done(text: str) -> bool:
    """True once a reply's tool calls are complete and something else follows them.

    A small model sometimes goes on after its call (an invented result, an "Answer: ..."); that
    text is discarded anyway, so generation stops there instead of running to the token limit.
    Another ``<tool_call>`` after a closed one (parallel calls) keeps it going.
    """
    start = text.rfind("<tool_call>")
    if start < 0:
        return False
    tail = text[start + len("<tool_call>") :]
    close = tail.find("</tool_call>")
    if close >= 0:
        rest = tail[close + len("</tool_call>") :].lstrip()
    else:
        body = tail.lstrip()
        if not body.startswith("{"):
            return False
        try:
            _, end = json.JSONDecoder().raw_decode(body)
        except ValueError:
            return False
        rest = body[end:].lstrip()
        if rest.startswith("<") and ("</tool_call>".startswith(rest) or rest.startswith("</tool_call>")):
            return False
    if not rest:
        return False
    return not ("<tool_call>".startswith(rest) or rest.startswith("<tool_call>"))


def parse_reply(text: str, tools: list[ToolSpec]) -> tuple[str, list[ToolCall]]:
    """Split a reply into (text, tool calls): ``<tool_call>`` blocks, else a bare call of a known tool.

    Small models sometimes drop the tags and answer with just the JSON object (or a fenced one);
    that is accepted only when it names one of the offered tools.
    """
    if not tools:
        return text.strip(), []
    known = {t.name for t in tools}
    content, calls = parse_tool_calls(text, known)
    if calls:
        return content, calls
    stripped = text.strip()
    if stripped.startswith("{"):
        call = _decode_call(stripped)
        if call is not None and call.name in known:
            return "", [call]
    return content, calls


#: how a reply that must call a tool is started (Qwen's native format; the text protocol's tag too)
FORCED_CALL_PREFIX = '<tool_call>\n{"name": "'

_engines: dict[tuple[str, int, int, int], LlamaEngine] = {}
_engines_lock = threading.Lock()


def get_engine(path: Path, *, n_ctx: int, n_threads: int, parallel: int) -> LlamaEngine:
    """The process's engine for this file and shape, loaded on first use (blocking: call in a thread)."""
    key = (str(path), n_ctx, n_threads, parallel)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            try:
                engine = _engines[key] = LlamaEngine(path, n_ctx=n_ctx, n_threads=n_threads, parallel=parallel)
            except ImportError as exc:
                raise LLMError(
                    "the local model needs llama.cpp's binding: pip install 'agentlightning[local]' (cyllama)"
                ) from exc
            except (OSError, ValueError, RuntimeError) as exc:
                raise LLMError(f"local model {path.name} failed to load: {exc}") from exc
        return engine


class LocalLlamaProvider(LLMProvider):
    """Chat completions from the embedded GGUF model, with native (or text-protocol) tool calls."""

    name = "local"

    def __init__(
        self,
        *,
        model: str = DEFAULT_LOCAL_MODEL,
        model_dir: str | Path | None = None,
        model_path: str | Path | None = None,
        max_new_tokens: int = 512,
        n_ctx: int = 4096,
        n_threads: int = 0,
        parallel: int = 1,
    ) -> None:
        self.spec = get_spec(model)
        self.model_dir = model_dir
        self.custom_path = Path(model_path) if model_path else None
        self.max_new_tokens = max_new_tokens
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.parallel = parallel
        self._engine: LlamaEngine | None = None
        self._lock = threading.Lock()

    @property
    def model_name(self) -> str:
        """The name recorded in results and traces."""
        return self.custom_path.stem if self.custom_path else self.spec.name

    def engine(self) -> LlamaEngine:
        """The loaded engine (verifies the file and loads the weights on first use; blocking)."""
        with self._lock:
            if self._engine is None:
                path = self.custom_path or model_file(self.spec, self.model_dir)
                self._engine = get_engine(path, n_ctx=self.n_ctx, n_threads=self.n_threads, parallel=self.parallel)
            return self._engine

    async def warm_up(self) -> None:
        """Load the model now (otherwise the first call loads it)."""
        await asyncio.to_thread(self.engine)

    async def complete(self, request: LLMRequest, on_token: Callable[[str], None] | None = None) -> LLMResponse:
        """One reply; ``on_token`` (called on the event loop) receives each text piece as it is made."""
        engine = await asyncio.to_thread(self.engine)
        native = None if self.custom_path else self.spec.native_tools
        tools = [] if request.tool_choice == "none" else request.tools
        # tool_choice "required": the reply is started with the call tag, so the model must name a tool.
        forced = FORCED_CALL_PREFIX if request.tool_choice == "required" and tools else ""
        try:
            prompt = engine.render(request.messages, tools, native) + forced
        except LLMError:
            raise
        except Exception as exc:  # noqa: BLE001 - a template error is the provider's failure
            raise LLMError(f"chat template failed: {exc}") from exc
        loop = asyncio.get_running_loop()
        forward: Callable[[str], None] | None = None
        if on_token is not None:
            callback = on_token

            def forward(piece: str) -> None:
                loop.call_soon_threadsafe(callback, piece)

        if forced and on_token is not None:
            on_token(forced)
        job = engine.submit(
            prompt,
            max_tokens=min(request.max_tokens, self.max_new_tokens),
            temperature=request.temperature,
            on_piece=forward,
            stop=tool_calls_done if tools else None,
            stop_prefix=forced,
        )
        try:
            gen = await asyncio.wrap_future(job.future)
        except asyncio.CancelledError:
            job.cancelled.set()
            raise
        log.info(
            "local generation: %d prompt tokens (%d reused) in %.1fs, %d tokens in %.1fs, %s",
            gen.prompt_tokens,
            gen.reused_tokens,
            gen.prompt_seconds,
            gen.completion_tokens,
            gen.generation_seconds,
            gen.finish_reason,
        )
        content, calls = parse_reply(forced + gen.text, tools)
        return LLMResponse(
            content=content,
            tool_calls=calls,
            usage=Usage(prompt_tokens=gen.prompt_tokens, completion_tokens=gen.completion_tokens),
            model=self.model_name,
            finish_reason="tool_calls" if calls else gen.finish_reason,
            provider=self.name,
        )

    async def stream(self, request: LLMRequest) -> AsyncIterator[str]:
        """Yield the reply's text pieces as they are generated (tool-call markup included)."""
        pieces: asyncio.Queue[str | None] = asyncio.Queue()

        async def run() -> None:
            try:
                await self.complete(request, on_token=pieces.put_nowait)
            finally:
                pieces.put_nowait(None)

        task = asyncio.create_task(run())
        try:
            while True:
                piece = await pieces.get()
                if piece is None:
                    break
                yield piece
            await task  # re-raise a failure
        finally:
            if not task.done():
                task.cancel()


#: the provider's former name (SmolLM2 was the only local model)
LocalSmolLMProvider = LocalLlamaProvider
