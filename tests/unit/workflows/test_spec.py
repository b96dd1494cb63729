"""Workflow definitions and templates without a database: the graph checks, the rules of
dependencies, and the Jinja2 sandbox (no Python internals, undefined names are errors)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agentlightning.workflows import templates
from agentlightning.workflows.spec import WorkflowCreate, check_definition, definition_dict, dependencies


def _create(steps: list[dict[str, object]], **extra: object) -> WorkflowCreate:
    return WorkflowCreate.model_validate({"name": "w", "steps": steps, **extra})


def test_dependencies_include_branches_and_failure_handlers() -> None:
    definition = _create(
        [
            {"id": "a", "kind": "tool", "tool": "calculator", "on_failure": "h"},
            {
                "id": "c",
                "kind": "condition",
                "depends_on": ["a"],
                "if": "steps.a.result > 1",
                "then": ["t"],
                "else": ["e"],
            },
            {"id": "t", "kind": "tool", "tool": "calculator"},
            {"id": "e", "kind": "tool", "tool": "calculator"},
            {"id": "h", "kind": "tool", "tool": "calculator"},
        ]
    )
    assert check_definition(definition) == []
    deps = dependencies(definition)
    assert deps["t"] == ["c"] and deps["e"] == ["c"] and deps["h"] == ["a"]
    stored = definition_dict(definition)
    assert stored["steps"][1]["if"] == "steps.a.result > 1" and stored["steps"][1]["else"] == ["e"]


@pytest.mark.parametrize(
    ("steps", "field", "fragment"),
    [
        (
            [{"id": "a", "kind": "tool", "tool": "x"}, {"id": "a", "kind": "tool", "tool": "x"}],
            "body.steps.1.id",
            "duplicate",
        ),
        ([{"id": "a", "kind": "tool", "tool": "x", "depends_on": ["a"]}], "body.steps.0.depends_on.0", "itself"),
        (
            [
                {"id": "a", "kind": "tool", "tool": "x", "depends_on": ["c"]},
                {"id": "b", "kind": "tool", "tool": "x", "depends_on": ["a"]},
                {"id": "c", "kind": "tool", "tool": "x", "depends_on": ["b"]},
            ],
            "body.steps.",
            "cycle",
        ),
        ([{"id": "a", "kind": "condition", "if": "true", "then": ["zz"]}], "body.steps.0.then.0", "'zz'"),
        ([{"id": "a", "kind": "tool", "tool": "x", "on_failure": "zz"}], "body.steps.0.on_failure", "'zz'"),
        ([{"id": "a", "kind": "tool", "tool": "x", "args": {"q": "{% if %}"}}], "body.steps.0.args.q", "syntax"),
        ([{"id": "a", "kind": "tool", "tool": "x", "for_each": "input.("}], "body.steps.0.for_each", "syntax"),
        (
            [{"id": "a", "kind": "tool", "tool": "x", "args": {"q": "{{ steps.nope }}"}}],
            "body.steps.0.args.q",
            "no such",
        ),
    ],
)
def test_structural_problems_name_the_field(steps: list[dict[str, object]], field: str, fragment: str) -> None:
    problems = check_definition(_create(steps))
    assert any(p.field.startswith(field) and fragment in p.message for p in problems), problems


def test_bad_shapes_are_pydantic_errors() -> None:
    with pytest.raises(ValidationError):
        _create([{"id": "1bad", "kind": "tool", "tool": "x"}])  # not an identifier
    with pytest.raises(ValidationError):
        _create([{"id": "a", "kind": "agent", "agent": "x", "agent_type": "y", "task": "t"}])  # both targets
    with pytest.raises(ValidationError):
        _create([{"id": "a", "kind": "tool", "tool": "x", "retry": {"max_attempts": 0}}])
    with pytest.raises(ValidationError):
        WorkflowCreate.model_validate({"name": "w", "yaml": "- just a list"})


def test_templates_render_values_and_text() -> None:
    context = {"input": {"n": 2, "words": ["a", "b"]}, "steps": {"x": {"result": 5}}}
    assert templates.render("{{ input.words }}", context) == ["a", "b"]
    assert templates.render("{{ steps.x.result * input.n }}", context) == 10
    assert templates.render("n={{ input.n }}", context) == "n=2"
    assert templates.evaluate("steps.x.result > 4", context) is True
    assert templates.render_value({"k": ["{{ input.n }}", "lit"]}, context) == {"k": [2, "lit"]}


@pytest.mark.parametrize(
    "text",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ input.__class__.__init__.__globals__ }}",
        "{{ cycler.__init__.__globals__.os }}",
    ],
)
def test_the_sandbox_refuses_python_internals(text: str) -> None:
    with pytest.raises(templates.TemplateError):
        templates.render(text, {"input": {}, "steps": {}})


@pytest.mark.parametrize("text", ["{{ 'a' * 10**9 }}", "{{ [1] * 1000000 }}", "{{ 2 ** 100000 }}"])
def test_templates_cannot_build_huge_values(text: str) -> None:
    with pytest.raises(templates.TemplateError):
        templates.render(text, {"input": {}, "steps": {}})


def test_all_digit_names_are_refused() -> None:
    with pytest.raises(ValidationError):
        WorkflowCreate.model_validate({"name": "123", "steps": [{"id": "a", "kind": "tool", "tool": "x"}]})


def test_undefined_names_are_errors() -> None:
    with pytest.raises(templates.TemplateError):
        templates.render("{{ input.missing }}", {"input": {}, "steps": {}})
    with pytest.raises(templates.TemplateError):
        templates.render("hello {{ nobody }}", {"input": {}, "steps": {}})
