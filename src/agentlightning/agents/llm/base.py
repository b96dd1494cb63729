"""The provider-neutral LLM interface the agent runtime talks to.

A provider turns a list of chat messages (plus optional tool schemas) into one
:class:`LLMResponse`.  Providers with native tool calling return structured
:class:`ToolCall` objects; providers without it use the text protocol in
:mod:`agentlightning.agents.llm.text_tools`, and the runtime never sees the difference.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]
#: "auto" (the model decides), "required" (the reply must call a tool), "none" (no tool call).
ToolChoice = Literal["auto", "required", "none"]


@dataclass(slots=True)
class ToolCall:
    """One request from the model to run a tool with JSON arguments."""

    id: str
    name: str
    arguments: dict[str, Any]
    #: the raw argument text when it could not be parsed as a JSON object
    raw_arguments: str | None = None


@dataclass(slots=True)
class ChatMessage:
    """One message of a conversation, in OpenAI chat format terms."""

    role: Role
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None

    def to_openai(self) -> dict[str, Any]:
        """Render the message as an OpenAI ``messages`` entry."""
        import json

        msg: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            msg["tool_calls"] = [
                {
                    "id": tc.id,
                    "type": "function",
                    "function": {
                        "name": tc.name,
                        "arguments": tc.raw_arguments if tc.raw_arguments is not None else json.dumps(tc.arguments),
                    },
                }
                for tc in self.tool_calls
            ]
        if self.tool_call_id is not None:
            msg["tool_call_id"] = self.tool_call_id
        if self.name is not None and self.role == "tool":
            msg["name"] = self.name
        return msg


@dataclass(slots=True)
class ToolSpec:
    """What the model is told about a tool: its name, purpose and JSON-schema parameters."""

    name: str
    description: str
    parameters: dict[str, Any]

    def to_openai(self) -> dict[str, Any]:
        """Render as an OpenAI ``tools`` entry."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


@dataclass(slots=True)
class Usage:
    """Token accounting of one LLM call."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class LLMResponse:
    """The model's answer to one call: text and/or tool calls, plus usage."""

    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    finish_reason: str | None = None
    provider: str = ""


@dataclass(slots=True)
class LLMRequest:
    """Everything a provider needs for one call."""

    messages: list[ChatMessage]
    model: str | None = None
    tools: list[ToolSpec] = field(default_factory=list)
    temperature: float = 0.2
    max_tokens: int = 512
    #: "auto" (the model decides), "required" (this reply must call a tool), "none" (no tool call)
    tool_choice: ToolChoice = "auto"


class LLMError(RuntimeError):
    """A provider failed after its own retries (timeout, HTTP error, bad output)."""


class LLMProvider(abc.ABC):
    """Abstract chat-completion provider used by the agent runtime."""

    #: short name recorded in trace spans ("openai", "local", ...)
    name: str = "llm"

    @abc.abstractmethod
    async def complete(self, request: LLMRequest) -> LLMResponse:
        """Run one chat completion. Raises :class:`LLMError` on failure."""

    async def aclose(self) -> None:  # pragma: no cover - default no-op
        """Release network clients or other resources."""
        return None
