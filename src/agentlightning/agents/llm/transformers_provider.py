"""Serving an agent whose promoted resources carry a LoRA ``adapter`` (``grpo``): base model + PEFT adapter.

Why not llama.cpp: the embedded runtime (cyllama 0.2.18) can load a GGUF LoRA
(``LlamaModel.lora_adapter_init``) but binds no call that attaches it to a context, and no
installed package ships llama.cpp's ``convert_lora_to_gguf.py``; so an adapter is served here,
with ``transformers`` and ``peft`` over the plain checkpoint of the same local model the adapter
was trained on (:func:`agentlightning.agents.llm.hf_models.prepare_hf_model`).

The adapter directory (what :mod:`agentlightning.rl.optimisers.grpo` saves) must lie under
``RL_ARTIFACTS_DIR``: an agent's config cannot make the server read files from anywhere else.
The model is loaded once per process and adapter; generation runs in a thread (one at a time per
model), never on the event loop; tool calls follow the same protocols as the llama.cpp provider.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentlightning.agents.llm.base import (
    ChatMessage,
    LLMError,
    LLMProvider,
    LLMRequest,
    LLMResponse,
    ToolSpec,
    Usage,
)
from agentlightning.agents.llm.hf_models import DEFAULT_TRAIN_MODEL, prepare_hf_model
from agentlightning.agents.llm.local import (
    FORCED_CALL_PREFIX,
    _native_message,
    default_threads,
    parse_reply,
    tool_calls_done,
)
from agentlightning.agents.llm.local_models import get_spec
from agentlightning.agents.llm.text_tools import to_text_protocol

log = logging.getLogger(__name__)

#: written by the GRPO optimiser beside the PEFT files: ``{"base_model": <LOCAL_MODEL key>, ...}``
ADAPTER_META = "agentlightning-adapter.json"


def resolve_adapter(adapter: str, artifacts_dir: str | Path) -> Path:
    """The adapter directory an agent's ``config.adapter`` names; :class:`LLMError` outside ``artifacts_dir``.

    A relative name is taken relative to ``RL_ARTIFACTS_DIR``.  Existence is checked when the
    adapter is loaded, not here (a config may be written before its adapter is).
    """
    root = Path(artifacts_dir).resolve()
    raw = Path(adapter)
    path = (raw if raw.is_absolute() else root / raw).resolve()
    if path != root and root not in path.parents:
        raise LLMError("adapter must be a directory under RL_ARTIFACTS_DIR (where the RL optimisers save them)")
    return path


def adapter_base_model(path: Path) -> str:
    """The local-model key an adapter was trained on (its metadata file; SmolLM2-135M by default)."""
    try:
        meta = json.loads((path / ADAPTER_META).read_text())
        key = str(meta.get("base_model") or DEFAULT_TRAIN_MODEL)
    except (OSError, ValueError):
        key = DEFAULT_TRAIN_MODEL
    get_spec(key)  # an unknown key is an LLMError
    return key


def adapter_model_name(path: Path) -> str:
    """The model name recorded in results and traces: ``<base>+lora:<adapter dir>``."""
    return f"{get_spec(adapter_base_model(path)).name}+lora:{path.name}"


def pick_device(device: str = "auto") -> str:
    """``cuda`` when asked for or (``auto``) when a GPU is present, else ``cpu``."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass
class HFEngine:
    """One base model (with an optional LoRA adapter) loaded for generation."""

    base_model: str
    adapter: Path | None
    device: str
    model: Any = None
    tokenizer: Any = None
    native_tools: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def load(self, model_dir: str | Path | None) -> None:
        """Load the weights (blocking): the plain checkpoint, then the adapter on top."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        started = time.perf_counter()
        if self.device == "cpu" and torch.get_num_threads() > default_threads():
            # As llama.cpp's slots: a core is left for the rest (torch's threads spin-wait for each other).
            torch.set_num_threads(default_threads())
        base_dir = prepare_hf_model(self.base_model, model_dir)
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        model: Any = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=dtype, local_files_only=True)
        if self.adapter is not None:
            from peft import PeftModel

            if not (self.adapter / "adapter_config.json").is_file():
                raise LLMError(f"no LoRA adapter in {self.adapter.name} (adapter_config.json missing)")
            model = PeftModel.from_pretrained(model, str(self.adapter), is_trainable=False)
        self.model = model.to(self.device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(str(base_dir), local_files_only=True)
        self.native_tools = get_spec(self.base_model).native_tools
        log.info(
            "transformers model %s%s loaded on %s in %.1fs",
            self.base_model,
            f" + adapter {self.adapter.name}" if self.adapter else "",
            self.device,
            time.perf_counter() - started,
        )

    def render(self, messages: list[ChatMessage], tools: list[ToolSpec]) -> str:
        """The prompt text through the model's chat template (native tools or the text protocol)."""
        if self.native_tools:
            rendered = [_native_message(m) for m in messages]
            tool_dicts = [t.to_openai() for t in tools] or None
        else:
            rendered, tool_dicts = to_text_protocol(messages, tools), None
        return str(
            self.tokenizer.apply_chat_template(rendered, tools=tool_dicts, add_generation_prompt=True, tokenize=False)
        )

    def generate(
        self,
        prompt: str,
        *,
        max_tokens: int,
        temperature: float,
        on_piece: Callable[[str], None] | None,
        stop: Callable[[str], bool] | None,
        stop_prefix: str,
        cancelled: threading.Event,
    ) -> tuple[str, int, int, str]:
        """Blocking generation: ``(text, prompt_tokens, completion_tokens, finish_reason)``."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextStreamer

        tokenizer = self.tokenizer
        inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(self.device)
        prompt_len = int(inputs["input_ids"].shape[1])

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                done = cancelled.is_set()
                if not done and stop is not None:
                    text = tokenizer.decode(input_ids[0, prompt_len:], skip_special_tokens=True)
                    done = stop(stop_prefix + text)
                return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)

        class _Forward(TextStreamer):
            def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
                if text and on_piece is not None:
                    on_piece(text)

        sampling: dict[str, Any] = (
            {"do_sample": True, "temperature": temperature, "top_p": 0.95, "top_k": 40}
            if temperature > 0
            else {"do_sample": False}
        )
        with self.lock, torch.inference_mode():
            out = self.model.generate(
                **inputs,
                max_new_tokens=max_tokens,
                stopping_criteria=StoppingCriteriaList([_Stop()]),
                streamer=_Forward(tokenizer, skip_prompt=True, skip_special_tokens=True) if on_piece else None,
                pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
                **sampling,
            )
        new = out[0, prompt_len:]
        configured = getattr(self.model.generation_config, "eos_token_id", None)
        eos = {tokenizer.eos_token_id} | set(configured if isinstance(configured, list) else [configured])
        ended = len(new) > 0 and int(new[-1]) in eos
        finish = "cancelled" if cancelled.is_set() else "stop" if ended or len(new) < max_tokens else "length"
        text = tokenizer.decode(new, skip_special_tokens=True)
        return text, prompt_len, int(len(new)) - (1 if ended else 0), finish


#: engines kept loaded per process; the least recently used one beyond this is dropped (each holds a
#: copy of the base model: a promotion followed by another must not keep both forever)
MAX_ENGINES = 2
_engines: OrderedDict[tuple[str, str, str], HFEngine] = OrderedDict()
_engines_lock = threading.Lock()


def get_hf_engine(base_model: str, adapter: Path | None, device: str, model_dir: str | Path | None) -> HFEngine:
    """The process's engine for this base model, adapter and device (loaded on first use; blocking).

    Callers look it up for each generation rather than keeping it, so a dropped engine is freed
    once its last generation ends.
    """
    key = (base_model, str(adapter or ""), device)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is not None:
            _engines.move_to_end(key)
        else:
            engine = HFEngine(base_model, adapter, device)
            try:
                engine.load(model_dir)
            except ImportError as exc:
                raise LLMError("serving an adapter needs pip install 'agentlightning[train]'") from exc
            except (OSError, ValueError, RuntimeError) as exc:
                raise LLMError(f"adapter model failed to load: {exc}") from exc
            _engines[key] = engine
            while len(_engines) > MAX_ENGINES:
                _engines.popitem(last=False)
        return engine


class TransformersProvider(LLMProvider):
    """Chat completions from a local model's plain checkpoint plus a LoRA adapter (GRPO's output)."""

    name = "transformers"

    def __init__(
        self,
        *,
        adapter: str | Path | None,
        base_model: str | None = None,
        model_dir: str | Path | None = None,
        max_new_tokens: int = 512,
        device: str = "auto",
    ) -> None:
        self.adapter = Path(adapter) if adapter else None
        self.base_model = base_model or (adapter_base_model(self.adapter) if self.adapter else DEFAULT_TRAIN_MODEL)
        self.model_dir = model_dir
        self.max_new_tokens = max_new_tokens
        self.device = device

    @property
    def model_name(self) -> str:
        """The name recorded in results and traces."""
        spec = get_spec(self.base_model)
        return f"{spec.name}+lora:{self.adapter.name}" if self.adapter else spec.name

    def engine(self) -> HFEngine:
        """The loaded engine (blocking the first time: call it in a thread)."""
        return get_hf_engine(self.base_model, self.adapter, pick_device(self.device), self.model_dir)

    async def warm_up(self) -> None:
        """Load the model now (otherwise the first call loads it)."""
        await asyncio.to_thread(self.engine)

    async def complete(self, request: LLMRequest, on_token: Callable[[str], None] | None = None) -> LLMResponse:
        """One reply; ``on_token`` (called on the event loop) receives each text piece as it is made."""
        engine = await asyncio.to_thread(self.engine)
        tools = [] if request.tool_choice == "none" else request.tools
        forced = FORCED_CALL_PREFIX if request.tool_choice == "required" and tools else ""
        try:
            prompt = engine.render(request.messages, tools) + forced
        except Exception as exc:  # noqa: BLE001 - a template error is the provider's failure
            raise LLMError(f"chat template failed: {exc}") from exc
        loop = asyncio.get_running_loop()
        forward: Callable[[str], None] | None = None
        if on_token is not None:
            callback = on_token

            def forward(piece: str) -> None:
                loop.call_soon_threadsafe(callback, piece)

            if forced:
                on_token(forced)
        cancelled = threading.Event()
        try:
            text, prompt_tokens, completion_tokens, finish = await asyncio.to_thread(
                engine.generate,
                prompt,
                max_tokens=min(request.max_tokens, self.max_new_tokens),
                temperature=request.temperature,
                on_piece=forward,
                stop=tool_calls_done if tools else None,
                stop_prefix=forced,
                cancelled=cancelled,
            )
        except asyncio.CancelledError:
            cancelled.set()
            raise
        except LLMError:
            raise
        except Exception as exc:  # noqa: BLE001 - any generation failure is the provider's
            raise LLMError(f"adapter generation: {exc}") from exc
        content, calls = parse_reply(forced + text, tools)
        return LLMResponse(
            content=content,
            tool_calls=calls,
            usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens),
            model=self.model_name,
            finish_reason="tool_calls" if calls else finish,
            provider=self.name,
        )
