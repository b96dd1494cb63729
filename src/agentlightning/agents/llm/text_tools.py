"""Text tool-call protocol for models without native function calling.

The tools are described in the system prompt and the model is asked to emit::

    <tool_call>{"name": "calculator", "arguments": {"expression": "2+2"}}</tool_call>

Tool results go back to the model as user messages wrapped in ``<tool_result>``.
:func:`to_text_protocol` rewrites a native conversation into this form and
:func:`parse_tool_calls` extracts calls from the model's reply.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from agentlightning.agents.llm.base import ChatMessage, ToolCall, ToolSpec

_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
_FENCED = re.compile(r"```(?:json|tool_call)?\s*(\{.*?\})\s*```", re.DOTALL)


def tool_instructions(tools: list[ToolSpec]) -> str:
    """System-prompt text that describes ``tools`` and the call syntax."""
    lines = [
        "You can use tools. To call a tool, reply with exactly one line of the form:",
        '<tool_call>{"name": "TOOL_NAME", "arguments": {...}}</tool_call>',
        "and nothing else. You will receive the result in a <tool_result> message.",
        "When you know the answer, reply with the answer in plain text and no tool call.",
        "Available tools:",
    ]
    for tool in tools:
        params = json.dumps(tool.parameters.get("properties", {}), separators=(",", ":"))
        lines.append(f"- {tool.name}: {tool.description} Arguments: {params}")
    return "\n".join(lines)


def _decode_call(blob: str) -> ToolCall | None:
    blob = blob.strip()
    try:
        obj = json.loads(blob)
    except json.JSONDecodeError:
        # tolerate trailing garbage after the JSON object
        try:
            obj, _ = json.JSONDecoder().raw_decode(blob)
        except json.JSONDecodeError:
            return None
    if not isinstance(obj, dict):
        return None
    name = obj.get("name") or obj.get("tool")
    if not isinstance(name, str) or not name:
        return None
    args = obj.get("arguments", obj.get("args", obj.get("parameters", {})))
    raw: str | None = None
    if isinstance(args, str):
        try:
            parsed = json.loads(args)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            args = parsed
        else:
            raw, args = args, {}
    if not isinstance(args, dict):
        raw, args = json.dumps(args), {}
    return ToolCall(id=f"call_{uuid.uuid4().hex[:12]}", name=name, arguments=args, raw_arguments=raw)


def parse_tool_calls(text: str, known_tools: set[str] | None = None) -> tuple[str, list[ToolCall]]:
    """Split a model reply into (text without tool calls, tool calls).

    Tagged ``<tool_call>`` blocks are authoritative; a fenced JSON block is
    accepted only when it names a known tool (small models often drop the tags).
    """
    calls: list[ToolCall] = []
    for match in _TAGGED.finditer(text):
        call = _decode_call(match.group(1))
        if call is not None:
            calls.append(call)
    remaining = _TAGGED.sub("", text)
    if not calls and known_tools:
        for match in _FENCED.finditer(text):
            call = _decode_call(match.group(1))
            if call is not None and call.name in known_tools:
                calls.append(call)
        if calls:
            remaining = _FENCED.sub("", text)
    return remaining.strip(), calls


def to_text_protocol(messages: list[ChatMessage], tools: list[ToolSpec]) -> list[dict[str, Any]]:
    """Rewrite a conversation with native tool calls into plain role/content messages."""
    out: list[dict[str, Any]] = []
    instructions = tool_instructions(tools) if tools else ""
    system_done = False
    for msg in messages:
        if msg.role == "system":
            content = msg.content
            if instructions and not system_done:
                content = f"{content}\n\n{instructions}" if content else instructions
                system_done = True
            out.append({"role": "system", "content": content})
        elif msg.role == "assistant":
            parts = [msg.content] if msg.content else []
            for tc in msg.tool_calls:
                payload = json.dumps({"name": tc.name, "arguments": tc.arguments})
                parts.append(f"<tool_call>{payload}</tool_call>")
            out.append({"role": "assistant", "content": "\n".join(parts)})
        elif msg.role == "tool":
            out.append(
                {
                    "role": "user",
                    "content": f'<tool_result name="{msg.name or ""}">{msg.content}</tool_result>',
                }
            )
        else:
            out.append({"role": "user", "content": msg.content})
    if instructions and not system_done:
        out.insert(0, {"role": "system", "content": instructions})
    return out
