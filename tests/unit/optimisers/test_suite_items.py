"""The built-in suite's generated tasks: deterministic, unique, and each verifier agrees with its answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentlightning.rl.suite.bfcl import convert, function_calling_items
from agentlightning.rl.suite.generators import FORMAT_KINDS, builtin_items
from agentlightning.rollouts.verifiers import validate_spec, verify
from agentlightning.vocabulary import SUITE_SPLITS, SUITE_TASK_TYPES

ITEMS = builtin_items()


def test_generation_is_deterministic_and_ids_unique() -> None:
    again = builtin_items()
    assert [(i.id, i.prompt, i.verifier, i.split) for i in again] == [
        (i.id, i.prompt, i.verifier, i.split) for i in ITEMS
    ]
    assert len({i.id for i in ITEMS}) == len(ITEMS)
    assert {i.split for i in ITEMS} <= set(SUITE_SPLITS)
    assert {i.task_type for i in ITEMS} <= set(SUITE_TASK_TYPES)
    assert all(len(i.id) <= 64 for i in ITEMS)


def test_every_sub_kind_is_held_out_alike() -> None:
    """Generators cycle through sub-kinds (four word problems, six answer formats); a held-out set
    made of some of them only would measure a prompt on tasks it was never tuned for."""
    for prefix, kinds in (("arith", 4), ("format", FORMAT_KINDS)):
        items = [i for i in ITEMS if i.id.startswith(f"{prefix}-")]
        for kind in range(kinds):
            of_kind = [i for i in items if int(i.id.split("-")[1]) % kinds == kind]
            held = sum(i.split == "heldout" for i in of_kind)
            assert 0.2 <= held / len(of_kind) <= 0.3, (prefix, kind, held, len(of_kind))


@pytest.mark.parametrize("item", ITEMS, ids=[i.id for i in ITEMS])
def test_verifier_accepts_reference_and_rejects_wrong_answer(item) -> None:  # noqa: ANN001
    validate_spec(item.verifier)  # what the scheduler checks when a task is assigned
    good = verify(item.verifier, item.reference)
    bad = verify(item.verifier, item.wrong)
    assert good.passed and good.score == 1.0, (item.reference, good.detail)
    assert not bad.passed and bad.score < 1.0, (item.wrong, bad.detail)


def _write_bfcl(tmp_path: Path, questions: list[dict], answers: list[dict]) -> Path:
    data = tmp_path / "data"
    (data / "possible_answer").mkdir(parents=True)
    name = "BFCL_v4_simple_python.json"
    (data / name).write_text("\n".join(json.dumps(q) for q in questions))
    (data / "possible_answer" / name).write_text("\n".join(json.dumps(a) for a in answers))
    return data


def test_bfcl_items_are_converted_to_json_schema_tasks(tmp_path: Path) -> None:
    function = {"name": "area", "description": "Area.", "parameters": {"type": "dict", "properties": {}}}
    questions = [
        {
            "id": "simple_python_0",
            "question": [[{"role": "user", "content": "Area of 10 by 5?"}]],
            "function": [function],
        },
        {"id": "simple_python_1", "question": [[{"role": "user", "content": "Nested?"}]], "function": [function]},
    ]
    answers = [
        {"id": "simple_python_0", "ground_truth": [{"area": {"base": [10], "height": [5], "unit": ["units", ""]}}]},
        {"id": "simple_python_1", "ground_truth": [{"area": {"shape": [{"w": 1}]}}]},  # not a scalar: left out
    ]
    items = function_calling_items(data_dir=_write_bfcl(tmp_path, questions, answers))
    assert [i.id for i in items] == ["fc-0000"]
    spec = items[0].verifier
    assert verify(spec, '{"name": "area", "arguments": {"base": 10, "height": 5}}').passed
    assert verify(spec, '{"name": "area", "arguments": {"base": 10, "height": 5, "unit": "units"}}').passed
    assert not verify(spec, '{"name": "area", "arguments": {"base": 10, "height": 6}}').passed
    assert not verify(spec, '{"name": "area", "arguments": {"base": 10}}').passed
    assert convert(questions[1], answers[1]) is None
