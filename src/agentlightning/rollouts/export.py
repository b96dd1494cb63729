"""Rollouts as training datasets: TRL's conversational prompt/completion rows, or VERL's layout.

* **TRL** (``format="trl"``): one row per rollout, ``prompt`` (the chat messages before the final
  assistant turn: system, user, earlier assistant tool calls and tool results: multi-turn is
  kept), ``completion`` (a list with the final assistant message), ``reward``, ``rollout_id``,
  ``agent_id``.  ``datasets.load_dataset("json" | "parquet", data_files=...)`` reads it and
  TRL's trainers take it as a conversational dataset.
* **VERL** (``format="verl"``): VERL's parquet columns ``data_source``, ``prompt`` (the chat
  messages), ``ability`` (the task type), ``reward_model`` (``{"style", "ground_truth"}``: the
  verifier's expected answer when the task declared one) and ``extra_info`` (rollout id, agent,
  reward, the recorded response, index, split).

The conversation of a rollout is taken from its last successful LLM span (its input messages and
its reply); a rollout without one (a cached answer, an SDK rollout that sent no spans) falls back
to its ``input`` (``messages`` or ``task``) and ``output``.  Rollouts without a conversation are
skipped.  Files are written a page at a time (JSON Lines, or Parquet through ``pyarrow`` with a
fixed schema, so pages with and without tool calls share one).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from agentlightning.rollouts.schemas import RolloutFilters
from agentlightning.storage.types import utcnow

if TYPE_CHECKING:
    from agentlightning.core.context import AppContext

__all__ = [
    "ExportFormat",
    "ExportResult",
    "FileFormat",
    "conversation",
    "export_rollouts",
    "trl_row",
    "verl_row",
]

ExportFormat = Literal["trl", "verl"]
FileFormat = Literal["jsonl", "parquet"]
PAGE_SIZE = 200
_MESSAGE_KEYS = ("role", "content", "tool_calls", "tool_call_id", "name")


@dataclass(slots=True)
class ExportResult:
    """What an export wrote."""

    path: Path
    rows: int
    skipped: int
    total: int


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # OpenAI content parts: keep the text parts
        return "".join(str(p.get("text", "")) for p in value if isinstance(p, dict))
    return json.dumps(value, ensure_ascii=False, default=str)


def _tool_calls(calls: Any) -> list[dict[str, Any]] | None:
    """Tool calls in OpenAI's shape (``arguments`` a JSON string), from either recorded shape."""
    if not isinstance(calls, list) or not calls:
        return None
    out = []
    for i, call in enumerate(calls):
        if not isinstance(call, dict):
            continue
        nested = call.get("function")
        function: dict[str, Any] = nested if isinstance(nested, dict) else call
        arguments = function.get("arguments")
        out.append(
            {
                "id": str(call.get("id") or f"call_{i}"),
                "type": "function",
                "function": {
                    "name": str(function.get("name", "")),
                    "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments or {}),
                },
            }
        )
    return out or None


def _message(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("role"), str):
        return None
    msg: dict[str, Any] = {"role": raw["role"], "content": _text(raw.get("content"))}
    calls = _tool_calls(raw.get("tool_calls"))
    if calls:
        msg["tool_calls"] = calls
    if raw.get("tool_call_id") is not None:
        msg["tool_call_id"] = str(raw["tool_call_id"])
    if raw.get("name") is not None and raw["role"] == "tool":
        msg["name"] = str(raw["name"])
    return msg


def _messages(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        return []
    return [m for m in (_message(x) for x in raw) if m is not None]


def _assistant(output: Any) -> dict[str, Any] | None:
    """The final assistant message from a recorded output (an LLM span's or a rollout's)."""
    if isinstance(output, str):
        return {"role": "assistant", "content": output}
    if not isinstance(output, dict):
        return None
    if isinstance(output.get("messages"), list):
        last = _messages(output["messages"])
        return last[-1] if last and last[-1]["role"] == "assistant" else None
    for key in ("content", "answer", "text"):
        if key in output and output[key] is not None:
            msg: dict[str, Any] = {"role": "assistant", "content": _text(output[key])}
            calls = _tool_calls(output.get("tool_calls"))
            if calls:
                msg["tool_calls"] = calls
            return msg
    return None


def conversation(rollout: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]] | None:
    """``(prompt messages, final assistant message)`` of a rollout, or None when it has none."""
    llm_spans = [
        s
        for s in rollout.get("spans") or []
        if s.get("kind") == "llm" and s.get("status") == "ok" and isinstance(s.get("input"), dict)
    ]
    for span in reversed(llm_spans):
        prompt = _messages(span["input"].get("messages"))
        final = _assistant(span.get("output"))
        if prompt and final is not None:
            return prompt, final
    source_input, output = rollout.get("input"), rollout.get("output")
    prompt = []
    if isinstance(source_input, dict):
        prompt = _messages(source_input.get("messages"))
        if not prompt and isinstance(source_input.get("task"), str):
            prompt = [{"role": "user", "content": source_input["task"]}]
    elif isinstance(source_input, str):
        prompt = [{"role": "user", "content": source_input}]
    elif isinstance(source_input, list):
        prompt = _messages(source_input)
    if prompt and prompt[-1]["role"] == "assistant" and output is None:
        return prompt[:-1], prompt[-1]
    final = _assistant(output)
    if not prompt or final is None:
        return None
    return prompt, final


def trl_row(rollout: dict[str, Any]) -> dict[str, Any] | None:
    """A TRL conversational prompt/completion row (None when the rollout has no conversation)."""
    found = conversation(rollout)
    if found is None:
        return None
    prompt, final = found
    return {
        "prompt": prompt,
        "completion": [final],
        "reward": rollout.get("reward"),
        "rollout_id": rollout["id"],
        "agent_id": rollout.get("agent_id"),
    }


def _ground_truth(metadata: dict[str, Any]) -> str:
    spec = metadata.get("verifier")
    if not isinstance(spec, dict):
        return ""
    for key in ("expected", "pattern", "schema"):
        if key in spec:
            value = spec[key]
            return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return ""


def verl_row(rollout: dict[str, Any], index: int, split: str = "train") -> dict[str, Any] | None:
    """A row of VERL's dataset layout (None when the rollout has no conversation)."""
    found = conversation(rollout)
    if found is None:
        return None
    prompt, final = found
    metadata = rollout.get("metadata") or {}
    truth = _ground_truth(metadata)
    agent_id = rollout.get("agent_id")
    return {
        "data_source": f"agentlightning/agent-{agent_id}" if agent_id is not None else "agentlightning",
        "prompt": [{"role": m["role"], "content": m["content"]} for m in prompt],
        "ability": str(metadata.get("task_type") or "agent"),
        "reward_model": {"style": "rule" if truth else "model", "ground_truth": truth},
        "extra_info": {
            "split": split,
            "index": index,
            "rollout_id": rollout["id"],
            "agent_id": agent_id,
            "reward": rollout.get("reward"),
            "response": final["content"],
        },
    }


def _arrow_schema(fmt: ExportFormat) -> Any:
    import pyarrow as pa

    if fmt == "verl":
        plain = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
        return pa.schema(
            [
                ("data_source", pa.string()),
                ("prompt", plain),
                ("ability", pa.string()),
                ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
                (
                    "extra_info",
                    pa.struct(
                        [
                            ("split", pa.string()),
                            ("index", pa.int64()),
                            ("rollout_id", pa.string()),
                            ("agent_id", pa.int64()),
                            ("reward", pa.float64()),
                            ("response", pa.string()),
                        ]
                    ),
                ),
            ]
        )
    call = pa.struct(
        [
            ("id", pa.string()),
            ("type", pa.string()),
            ("function", pa.struct([("name", pa.string()), ("arguments", pa.string())])),
        ]
    )
    message = pa.list_(
        pa.struct(
            [
                ("role", pa.string()),
                ("content", pa.string()),
                ("tool_calls", pa.list_(call)),
                ("tool_call_id", pa.string()),
                ("name", pa.string()),
            ]
        )
    )
    return pa.schema(
        [
            ("prompt", message),
            ("completion", message),
            ("reward", pa.float64()),
            ("rollout_id", pa.string()),
            ("agent_id", pa.int64()),
        ]
    )


class _Writer:
    """Appends pages of rows to a JSON Lines or Parquet file."""

    def __init__(self, path: Path, file_format: FileFormat, fmt: ExportFormat) -> None:
        self.path = path
        self.file_format = file_format
        self.fmt = fmt
        self._parquet: Any = None
        self._jsonl: Any = None
        path.parent.mkdir(parents=True, exist_ok=True)
        if file_format == "parquet":
            import pyarrow.parquet as pq

            self._schema = _arrow_schema(fmt)
            self._parquet = pq.ParquetWriter(str(path), self._schema)
        else:
            self._jsonl = path.open("w", encoding="utf-8")

    def write(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        if self._parquet is not None:
            import pyarrow as pa

            self._parquet.write_table(pa.Table.from_pylist(rows, schema=self._schema))
        else:
            for row in rows:
                self._jsonl.write(json.dumps(row, ensure_ascii=False) + "\n")

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
        if self._jsonl is not None:
            self._jsonl.close()


def file_format_for(path: Path, given: FileFormat | None) -> FileFormat:
    """The file format asked for, else the one the file name says (``.parquet``/``.pq``, else JSON Lines)."""
    if given is not None:
        return given
    return "parquet" if path.suffix.lower() in (".parquet", ".pq") else "jsonl"


async def export_rollouts(
    ctx: AppContext,
    path: Path,
    *,
    fmt: ExportFormat = "trl",
    file_format: FileFormat | None = None,
    filters: RolloutFilters | None = None,
    limit: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> ExportResult:
    """Write the rollouts matching ``filters`` (newest first, at most ``limit``) to ``path``.

    ``on_progress(done, total)`` is called after each page.  The platform reads every rollout
    (the CLI runs with the operator's access).
    """
    from agentlightning.rollouts.service import RolloutService

    service = RolloutService(ctx)
    base = (filters or RolloutFilters()).model_copy(update={"page": 1, "page_size": PAGE_SIZE})
    if base.until is None:  # rollouts stored while exporting would shift the pages
        base = base.model_copy(update={"until": utcnow()})
    total = int((await service.list(None, base.model_copy(update={"page_size": 1})))["total"])
    if limit is not None:
        total = min(total, limit)
    writer = _Writer(path, file_format_for(path, file_format), fmt)
    rows = skipped = done = 0
    try:
        page = 1
        while done < total:
            batch: Iterable[dict[str, Any]] = await service.details(None, base.model_copy(update={"page": page}))
            batch = list(batch)[: total - done]
            if not batch:
                break
            out: list[dict[str, Any]] = []
            for rollout in batch:
                row = trl_row(rollout) if fmt == "trl" else verl_row(rollout, rows + len(out))
                if row is None:
                    skipped += 1
                else:
                    out.append(row)
            writer.write(out)
            rows += len(out)
            done += len(batch)
            page += 1
            if on_progress is not None:
                on_progress(done, total)
    finally:
        writer.close()
    return ExportResult(path=path, rows=rows, skipped=skipped, total=total)
