"""``calculator``: exact, safe arithmetic over a parsed AST (no ``eval``)."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from agentlightning.agents.tools.base import Tool, ToolContext, ToolError

_BINOPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt,
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "floor": math.floor,
    "ceil": math.ceil,
    "log": math.log,
    "log10": math.log10,
    "log2": math.log2,
    "exp": math.exp,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "factorial": math.factorial,
}
_CONSTS = {"pi": math.pi, "e": math.e, "tau": math.tau}
MAX_EXPRESSION_LENGTH = 500
MAX_EXPONENT = 10_000
MAX_FACTORIAL = 1_000


def evaluate(expression: str) -> int | float:
    """Evaluate an arithmetic expression; raises :class:`ToolError` on anything else."""
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise ToolError("expression too long")
    try:
        tree = ast.parse(expression.replace("^", "**"), mode="eval")
    except SyntaxError as exc:
        raise ToolError(f"not an arithmetic expression: {exc.msg}") from exc
    try:
        return _eval(tree.body)
    except ZeroDivisionError as exc:
        raise ToolError("division by zero") from exc
    except (OverflowError, ValueError) as exc:
        raise ToolError(str(exc)) from exc


def _eval(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ToolError("exponent too large")
        return _BINOPS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.Name) and node.id in _CONSTS:
        return _CONSTS[node.id]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS and not node.keywords:
        args = [_eval(a) for a in node.args]
        if node.func.id == "factorial" and (not args or args[0] > MAX_FACTORIAL):
            raise ToolError("factorial argument too large")
        return _FUNCS[node.func.id](*args)
    raise ToolError(f"unsupported element: {ast.dump(node)[:60]}")


class CalculatorTool(Tool):
    """Evaluates arithmetic: + - * / // % ** (or ^), parentheses, sqrt, log, sin, pi, ..."""

    name = "calculator"
    description = "Evaluate an arithmetic expression exactly, e.g. '(3 + 4) * 2 ** 10 / sqrt(16)'."
    parameters = {
        "type": "object",
        "properties": {"expression": {"type": "string", "description": "The arithmetic expression."}},
        "required": ["expression"],
        "additionalProperties": False,
    }
    permission = "read"
    timeout_s = 2.0

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        """Return ``{"expression", "result"}``."""
        result = evaluate(str(args["expression"]))
        if isinstance(result, float) and result.is_integer() and abs(result) < 2**53:
            result = int(result)
        return {"expression": args["expression"], "result": result}
