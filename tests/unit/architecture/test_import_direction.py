"""Dependencies point one way: only the API layer and the CLIs know about HTTP.

Domain packages (agents, auth, rl, knowledge, core, storage, ...) raise
:mod:`agentlightning.errors` and return plain data; the API maps both to HTTP. An import of
``agentlightning.api``, ``fastapi`` or ``starlette`` anywhere else (even under ``TYPE_CHECKING`` or
inside a function) would drag the web framework back into the domain and recreate import cycles.
"""

from __future__ import annotations

import ast
from pathlib import Path

import agentlightning

PACKAGE_ROOT = Path(agentlightning.__file__).parent
FORBIDDEN = ("agentlightning.api", "fastapi", "starlette")


def _allowed_to_know_http(path: Path) -> bool:
    relative = path.relative_to(PACKAGE_ROOT)
    return relative.parts[0] == "api" or relative.name == "cli.py"


def _imported_modules(tree: ast.AST, module_name: str) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing module's package
                base = module_name.rsplit(".", node.level)[0]
                found.append((node.lineno, f"{base}.{node.module}" if node.module else base))
            elif node.module:
                found.append((node.lineno, node.module))
    return found


def _module_name(path: Path) -> str:
    parts = ("agentlightning",) + path.relative_to(PACKAGE_ROOT).with_suffix("").parts
    return ".".join(parts)


def _violations() -> list[str]:
    problems = []
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        if _allowed_to_know_http(path):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for lineno, name in _imported_modules(tree, _module_name(path)):
            if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN):
                problems.append(f"{path.relative_to(PACKAGE_ROOT)}:{lineno} imports {name}")
    return problems


def test_only_the_api_layer_and_cli_import_http() -> None:
    assert _violations() == []


def test_the_walker_sees_a_violation(tmp_path: Path) -> None:
    """The check itself works: an import in a function body is found."""
    tree = ast.parse("def f():\n    from fastapi import FastAPI\n    import starlette.responses\n")
    names = [name for _, name in _imported_modules(tree, "agentlightning.agents.x")]
    assert names == ["fastapi", "starlette.responses"]


def test_error_module_is_free_of_http() -> None:
    import agentlightning.errors as errors

    source = Path(errors.__file__).read_text(encoding="utf-8")
    assert "status_code" not in source and "fastapi" not in source
