"""The catalogue of agent templates users can copy into their own agents.

``POST /api/v2/agents`` with ``{"template": "data_agent", "name": "sales_analyst"}`` creates an
agent from a template (fields given in the request override the template's).  A fresh install
also has one agent per starter template (seeded by migration 0002), so
``{"agent_type": "data_agent"}`` works out of the box.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class AgentTemplate:
    """A ready-made agent definition."""

    name: str
    type: str
    description: str
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the API."""
        return {
            "name": self.name,
            "type": self.type,
            "description": self.description,
            "config": copy.deepcopy(self.config),
        }


TEMPLATES: dict[str, AgentTemplate] = {
    t.name: t
    for t in (
        AgentTemplate(
            "general_assistant",
            "assistant",
            "General-purpose assistant: answers questions, does arithmetic and date maths.",
            {
                "system_prompt": (
                    "You are a helpful, precise assistant. Answer concisely. For arithmetic call the calculator "
                    "tool and for dates the datetime tool instead of working it out yourself; then answer from "
                    "the tool's result."
                ),
                "tools": ["calculator", "datetime", "memory"],
                "provider": "auto",
                "temperature": 0.2,
                "max_concurrency": 4,
            },
        ),
        AgentTemplate(
            "data_agent",
            "data_agent",
            "Analyses data: runs read-only SQL against configured data sources and Python for statistics.",
            {
                "system_prompt": (
                    "You are a data analyst. Use sql_query to read data from the named data source, python to "
                    "compute statistics, and report findings with the numbers that support them."
                ),
                "tools": ["sql_query", "python", "calculator"],
                "provider": "auto",
                "temperature": 0.1,
                "max_concurrency": 4,
            },
        ),
        AgentTemplate(
            "research_agent",
            "research_agent",
            "Answers from the knowledge base and cites the items it used.",
            {
                "system_prompt": (
                    "You are a research assistant. Search the knowledge base with knowledge_search, answer from "
                    "what you find, and cite item ids like [#12]. Say so when the knowledge base has no answer."
                ),
                "tools": ["knowledge_search", "memory"],
                "provider": "auto",
                "temperature": 0.2,
                "max_concurrency": 4,
            },
        ),
        AgentTemplate(
            "math_agent",
            "math_agent",
            "Solves maths problems step by step, checking arithmetic with the calculator and Python.",
            {
                "system_prompt": (
                    "You are a careful mathematician. Never compute in your head: for each calculation, first "
                    "call the calculator tool with the expression (or python for longer programs) and wait for "
                    "its result. Once you have the results, reply briefly and end with 'Answer: <result>'."
                ),
                "tools": ["calculator", "python"],
                # the first reply is a tool call: small local models otherwise answer from memory
                "tool_choice": "required",
                "provider": "auto",
                "temperature": 0.0,
                "max_concurrency": 4,
            },
        ),
        AgentTemplate(
            "web_agent",
            "web_agent",
            "Reads allow-listed web resources (needs HTTP_TOOL_ENABLED and HTTP_TOOL_ALLOWED_HOSTS).",
            {
                "system_prompt": "You fetch and summarise web resources with http_request. Quote the URL you used.",
                "tools": ["http_request", "datetime"],
                "provider": "auto",
                "temperature": 0.2,
                "max_concurrency": 2,
            },
        ),
    )
}


def get_template(name: str) -> AgentTemplate | None:
    """The template called ``name``."""
    return TEMPLATES.get(name)
