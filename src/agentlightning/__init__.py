"""Agent Lightning: serve LLM agents over HTTP and improve them with reinforcement learning.

The top-level package is the lightweight SDK (``httpx`` and ``pydantic`` only): ``Client``,
``AsyncClient``, ``emit_reward`` and the wrappers ``OpenAIWrapper``, ``LangChainWrapper`` and
``AutoGenWrapper``, each imported only when first used so that a framework is loaded only by
code that wraps it. The server lives in sub-packages installed with the ``[server]`` extra.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from agentlightning.sdk import AsyncClient, Client, PlatformError, emit_reward

if TYPE_CHECKING:
    from agentlightning.integrations.autogen import AutoGenWrapper
    from agentlightning.integrations.langchain import LangChainWrapper
    from agentlightning.integrations.openai import OpenAIWrapper

__version__ = "0.1.0"

_LAZY = {
    "OpenAIWrapper": "agentlightning.integrations.openai",
    "LangChainWrapper": "agentlightning.integrations.langchain",
    "AutoGenWrapper": "agentlightning.integrations.autogen",
}

__all__ = [
    "AsyncClient",
    "AutoGenWrapper",
    "Client",
    "LangChainWrapper",
    "OpenAIWrapper",
    "PlatformError",
    "__version__",
    "emit_reward",
]


def __getattr__(name: str) -> Any:
    """Import a wrapper (and so its framework) on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'agentlightning' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
