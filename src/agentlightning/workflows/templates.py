"""Templates and expressions of workflow definitions: Jinja2's sandbox, never ``eval``.

Inputs of steps are templates over the run's ``input``, the outputs of earlier steps (``steps.<id>``)
and, inside a fan-out, ``item`` and ``index``.  A string that is exactly one ``{{ expression }}``
renders to the expression's value (a list stays a list); any other string renders to text.
Conditions and ``for_each`` are bare expressions (``steps.classify == 'math'``).  Undefined names
are errors (``StrictUndefined``), and the sandbox refuses attribute access to Python internals.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from typing import Any

from jinja2 import StrictUndefined, TemplateError, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

__all__ = [
    "TemplateError",
    "compile_expression",
    "evaluate",
    "jsonable_value",
    "render",
    "render_value",
    "step_references",
]

#: The longest template or expression accepted (keeps parsing cheap).
MAX_TEMPLATE_CHARS = 20_000
_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>.*)\}\}\s*$", re.DOTALL)

#: Largest string or list a ``*`` may build, and largest exponent of ``**`` (a template cannot
#: exhaust the engine's memory or CPU with ``'a' * 10**10``).
MAX_REPEAT = 100_000
MAX_EXPONENT = 1_000


class _BoundedSandbox(SandboxedEnvironment):
    """The sandbox, with ``*`` and ``**`` bounded."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if isinstance(right, (int, float)) and abs(right) > MAX_EXPONENT:
                raise SecurityError(f"exponent larger than {MAX_EXPONENT}")
            return left**right
        for seq, count in ((left, right), (right, left)):
            if isinstance(seq, (str, list, tuple)) and isinstance(count, int):
                if len(seq) * max(count, 0) > MAX_REPEAT:
                    raise SecurityError(f"a repetition longer than {MAX_REPEAT}")
        return left * right


_env = _BoundedSandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


def _expression_of(text: str) -> str | None:
    """The expression of a template that is exactly ``{{ expression }}``, else None."""
    match = _SINGLE_EXPRESSION.match(text)
    if match is None or "{{" in match.group("expr") or "{%" in text:
        return None
    return match.group("expr")


def parse(text: str) -> nodes.Template:
    """The syntax tree of a template; raises :class:`TemplateError` on a syntax error."""
    return _env.parse(text)


@functools.lru_cache(maxsize=2048)
def compile_expression(text: str) -> Any:
    """A compiled expression (bare, or wrapped in ``{{ }}``), cached; raises :class:`TemplateError`."""
    inner = _expression_of(text)
    return _env.compile_expression(inner if inner is not None else text, undefined_to_none=False)


@functools.lru_cache(maxsize=2048)
def _template(text: str) -> Any:
    return _env.from_string(text)


def expression_tree(text: str) -> nodes.Template:
    """The syntax tree of an expression (for reference checks)."""
    inner = _expression_of(text)
    return _env.parse("{{ " + (inner if inner is not None else text) + " }}")


def evaluate(text: str, context: dict[str, Any]) -> Any:
    """The value of an expression in ``context``."""
    value = compile_expression(text)(**context)
    return _plain(value)


def render(text: str, context: dict[str, Any]) -> Any:
    """A template's value: the expression's own value for ``{{ expr }}``, else the rendered text."""
    if _expression_of(text) is not None:
        return evaluate(text, context)
    return _template(text).render(**context)


def render_value(value: Any, context: dict[str, Any]) -> Any:
    """Render every string inside a JSON value (dict keys stay as they are)."""
    if isinstance(value, str):
        return render(value, context)
    if isinstance(value, dict):
        return {k: render_value(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, context) for v in value]
    return value


def jsonable_value(value: Any) -> Any:
    """``value`` as plain JSON types (what a step's output is stored as)."""
    return json.loads(json.dumps(value, default=str))


def _plain(value: Any) -> Any:
    """A JSON-able copy of an expression's value (tuples become lists, undefined raises)."""
    if isinstance(value, StrictUndefined):
        str(value)  # raises UndefinedError naming the missing variable
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, (list, dict, str, int, float, bool)) or value is None:
        return value
    return str(value)


def step_references(tree: nodes.Node) -> Iterator[str]:
    """The step ids a template reads (``steps.x`` and ``steps['x']``)."""
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        target = getattr(node, "node", None)
        if not (isinstance(target, nodes.Name) and target.name == "steps"):
            continue
        if isinstance(node, nodes.Getattr):
            yield str(node.attr)
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            yield node.arg.value
