"""The local model's files: split parts joined once and SHA-256 checked (a mismatch is refused),
the pinned install list, and how a reply's tool calls are read. No model is loaded here."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from agentlightning.agents.llm.base import LLMError, ToolSpec
from agentlightning.agents.llm.local import parse_reply
from agentlightning.agents.llm.local_models import MODELS, LocalModelSpec, model_file
from agentlightning.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
CALC = ToolSpec("calculator", "Evaluate arithmetic", {"type": "object", "properties": {"expression": {}}})


def _fake_parts(root: Path, prefix: str, chunks: list[bytes]) -> tuple[tuple[str, str], ...]:
    parts = []
    for i, chunk in enumerate(chunks, start=1):
        package = root / f"{prefix}{i}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "data" / f"part{i:02d}.bin").write_bytes(chunk)
        parts.append((f"{prefix}{i}", f"data/part{i:02d}.bin"))
    return tuple(parts)


def _spec(parts: tuple[tuple[str, str], ...], data: bytes, sha: str | None = None) -> LocalModelSpec:
    return LocalModelSpec(
        key="fake",
        name="fake-model",
        parts=parts,
        sha256=sha or hashlib.sha256(data).hexdigest(),
        size=len(data),
        filename="fake.gguf",
        native_tools=True,
        wheels="fake-part1..3",
    )


def test_parts_are_joined_once_in_order_and_verified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chunks = [b"GGUF" + b"a" * 100, b"b" * 50, b"c" * 7]
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    spec = _spec(_fake_parts(tmp_path / "site", "joinok_part", chunks), b"".join(chunks))
    models = tmp_path / "models"
    path = model_file(spec, models)
    assert path == models / "fake.gguf" and path.read_bytes() == b"".join(chunks)
    assert (models / "fake.gguf.verified").is_file()
    stamp = path.stat().st_mtime_ns
    assert model_file(spec, models) == path and path.stat().st_mtime_ns == stamp  # not joined again
    assert [p.name for p in models.iterdir() if p.name.endswith(".part")] == []


def test_a_mismatching_digest_is_refused_and_nothing_is_left(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chunks = [b"GGUF-one", b"-two"]
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    spec = _spec(_fake_parts(tmp_path / "site", "joinbad_part", chunks), b"", sha="0" * 64)
    models = tmp_path / "models"
    with pytest.raises(LLMError, match="refusing"):
        model_file(spec, models)
    assert list(models.iterdir()) == []


def test_a_file_changed_after_verification_is_checked_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chunks = [b"GGUF-original", b"-weights"]
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    spec = _spec(_fake_parts(tmp_path / "site", "jointamper_part", chunks), b"".join(chunks))
    models = tmp_path / "models"
    path = model_file(spec, models)
    path.write_bytes(b"GGUF-tampered-weights!")  # swapped behind our back
    assert model_file(spec, models).read_bytes() == b"".join(chunks)  # rebuilt from the verified parts


def test_a_tampered_single_file_model_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    parts = _fake_parts(tmp_path / "site", "single_part", [b"GGUF-small"])
    spec = _spec(parts, b"GGUF-small")
    assert model_file(spec, tmp_path / "models").read_bytes() == b"GGUF-small"  # used in place
    (tmp_path / "site" / "single_part1" / "data" / "part01.bin").write_bytes(b"GGUF-evil!")
    with pytest.raises(LLMError, match="SHA-256"):
        model_file(spec, tmp_path / "models")


def test_missing_parts_name_the_install_command(tmp_path: Path) -> None:
    spec = _spec((("no_such_model_part1", "data/part01.bin"),), b"x")
    with pytest.raises(LLMError, match="requirements/local-model.txt"):
        model_file(spec, tmp_path)


def test_every_part_is_pinned_with_a_hash_in_the_install_list() -> None:
    text = (ROOT / "requirements" / "local-model.txt").read_text()
    pinned = set(re.findall(r"^([a-z0-9-]+)==\S+ --hash=sha256:[0-9a-f]{64}$", text, re.M))
    assert pinned, "no pinned, hashed requirement found"
    for spec in MODELS.values():
        assert len(spec.sha256) == 64
        for package, _ in spec.parts:
            assert package.replace("_", "-") in pinned, package


def test_the_model_is_a_setting_with_a_data_dir_outside_the_tree() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.local_model == "qwen2.5-coder-1.5b" and settings.local_model in MODELS
    assert not Path(settings.local_model_dir).resolve().is_relative_to(ROOT)
    with pytest.raises(ValueError):
        Settings(_env_file=None, local_model="gpt-5")  # type: ignore[call-arg]


def test_replies_become_native_tool_calls() -> None:
    text = (
        'Let me compute.\n<tool_call>\n{"name": "calculator", "arguments": {"expression": "3*4"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "calculator", "arguments": {"expression": "5*6"}}\n</tool_call>'
    )
    content, calls = parse_reply(text, [CALC])
    assert content == "Let me compute."
    assert [c.arguments["expression"] for c in calls] == ["3*4", "5*6"]  # parallel calls
    assert len({c.id for c in calls}) == 2
    # forced call with the closing tag missing and chatter after it
    _, calls = parse_reply('<tool_call>\n{"name": "calculator", "arguments": {"expression": "1+1"}}\nAnswer: 2', [CALC])
    assert calls[0].arguments == {"expression": "1+1"}
    # tags dropped: a bare object naming an offered tool is still a call; an unknown one is text
    assert parse_reply('{"name": "calculator", "arguments": {"expression": "2"}}', [CALC])[1][0].name == "calculator"
    assert parse_reply('{"name": "rm_rf", "arguments": {}}', [CALC])[1] == []
    # no tools offered: never a call
    assert parse_reply('<tool_call>{"name": "calculator", "arguments": {}}</tool_call>', [])[1] == []
    # arguments that are not an object are kept raw for the runtime to refuse
    _, calls = parse_reply('<tool_call>{"name": "calculator", "arguments": "3*4"}</tool_call>', [CALC])
    assert calls[0].raw_arguments == "3*4" and calls[0].arguments == {}


def test_only_trustworthy_answers_are_cached() -> None:
    from agentlightning.agents.executor import is_trustworthy

    good = {"answer": "Answer: 391", "tool_calls": [{"name": "calculator", "ok": True}], "step_limit_reached": False}
    assert is_trustworthy(good) and is_trustworthy({"answer": "Paris", "tool_calls": []})
    assert not is_trustworthy(good | {"step_limit_reached": True})  # forced out by the step limit
    assert not is_trustworthy(good | {"tool_calls": [{"name": "calculator", "ok": False, "error": "bad"}]})


def test_generation_stops_once_the_calls_are_complete() -> None:
    from agentlightning.agents.llm.local import tool_calls_done

    call = '<tool_call>\n{"name": "calculator", "arguments": {"expression": "17*23"}}'
    assert not tool_calls_done("Let me think")
    assert not tool_calls_done(call[:-3])  # the object is still open
    assert not tool_calls_done(call + "\n")
    assert not tool_calls_done(call + "\n</tool")  # the closing tag is coming
    assert not tool_calls_done(call + "\n</tool_call>\n<tool")  # a parallel call is coming
    assert not tool_calls_done(call + "\n</tool_call>\n" + call)
    assert tool_calls_done(call + "\nAnswer: 391")  # chatter after an unclosed call
    assert tool_calls_done(call + "\n</tool_call>\nThe result is")  # chatter after a closed call
