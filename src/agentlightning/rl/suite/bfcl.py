"""Function-calling tasks from the Berkeley Function Calling Leaderboard (the ``bfcl-eval`` package).

``bfcl-eval`` ships its data sets as JSON-lines files inside the package (``bfcl_eval/data``); it
is installed without its own dependencies (``pip install --no-deps bfcl-eval``, see
``requirements/suite-data.txt``), and only its data files are read here, never its code.

From the ``simple_python`` category (one function, one call) we keep the items whose every
argument's accepted values are plain JSON scalars, and turn each into a task: the agent is shown
the function's schema and must answer with one JSON object ``{"name", "arguments"}``; the verifier
is a JSON schema that pins the function name and each argument to its accepted values (an
argument whose accepted values include ``""`` may be left out, as in BFCL's own checker).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from agentlightning.rl.suite.generators import SuiteItem, split_of

#: How many function-calling items the suite takes.
COUNT = 40
CATEGORY = "BFCL_v4_simple_python.json"


def bfcl_data_dir() -> Path | None:
    """``bfcl_eval/data`` of the installed package, or None when ``bfcl-eval`` is not installed."""
    spec = importlib.util.find_spec("bfcl_eval")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        data = Path(location) / "data"
        if (data / CATEGORY).is_file() and (data / "possible_answer" / CATEGORY).is_file():
            return data
    return None


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) and not isinstance(value, dict)


def convert(question: dict[str, Any], answer: dict[str, Any]) -> tuple[str, dict[str, Any], str, str] | None:
    """One BFCL item as ``(prompt, verifier, reference, wrong)``, or None if it does not fit."""
    functions = question.get("function") or []
    truth = answer.get("ground_truth") or []
    turns = question.get("question") or []
    if len(functions) != 1 or len(truth) != 1 or len(turns) != 1 or len(turns[0]) != 1:
        return None
    ((name, accepted),) = truth[0].items()
    properties: dict[str, Any] = {}
    required: list[str] = []
    reference_args: dict[str, Any] = {}
    for arg, values in accepted.items():
        if not isinstance(values, list) or not values or not all(_scalar(v) for v in values):
            return None
        allowed = [v for v in values if v != ""]
        if not allowed:
            continue
        properties[arg] = {"enum": allowed}
        if "" not in values:
            required.append(arg)
        reference_args[arg] = allowed[0]
    schema = {
        "type": "object",
        "properties": {
            "name": {"const": name},
            "arguments": {"type": "object", "properties": properties, "required": required},
        },
        "required": ["name", "arguments"],
    }
    function = functions[0]
    prompt = (
        "You can call this function (JSON schema of its parameters):\n"
        f"{json.dumps(function, ensure_ascii=False)}\n\n"
        f"Request: {turns[0][0]['content']}\n\n"
        'Reply with only one JSON object {"name": <function name>, "arguments": {<argument>: <value>, ...}} '
        "that makes the call answering the request, and nothing else."
    )
    reference = json.dumps({"name": name, "arguments": reference_args}, ensure_ascii=False)
    wrong = json.dumps({"name": f"{name}_unknown", "arguments": reference_args}, ensure_ascii=False)
    return prompt, {"type": "json_schema", "schema": schema}, reference, wrong


def function_calling_items(count: int = COUNT, data_dir: Path | None = None) -> list[SuiteItem]:
    """The first ``count`` convertible ``simple_python`` items; empty when ``bfcl-eval`` is missing."""
    data = data_dir or bfcl_data_dir()
    if data is None:
        return []
    answers = {a["id"]: a for a in _lines(data / "possible_answer" / CATEGORY)}
    items: list[SuiteItem] = []
    for question in _lines(data / CATEGORY):
        answer = answers.get(question.get("id"))
        converted = convert(question, answer) if answer else None
        if converted is None:
            continue
        prompt, verifier, reference, wrong = converted
        index = len(items)
        items.append(
            SuiteItem(
                id=f"fc-{index:04d}",
                split=split_of(index),
                task_type="function_calling",
                prompt=prompt,
                verifier=verifier,
                reference=reference,
                wrong=wrong,
                context={"task_type": "function_calling", "bfcl_id": question["id"]},
            )
        )
        if len(items) >= count:
            break
    return items
