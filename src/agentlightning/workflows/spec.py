"""Workflow definitions: the DAG model, its structural checks and the dependency rules the engine uses.

A definition is a list of steps (JSON, or YAML parsed with ``yaml.safe_load``)::

    steps:
      - {id: classify, kind: agent, agent: router, task: "Classify: {{ input.question }}"}
      - {id: is_math, kind: condition, depends_on: [classify], if: "'math' in steps.classify", then: [solve], else: [chat]}
      - {id: solve, kind: tool, tool: calculator, args: {expression: "{{ input.expression }}"}}
      - {id: chat, kind: agent, agent_type: general, task: "{{ input.question }}"}
      - {id: per_item, kind: agent, agent: writer, for_each: "input.items", task: "Write about {{ item }}"}
      - {id: summary, kind: agent, agent: writer, depends_on: [per_item], task: "Summarise {{ steps.per_item }}"}
    output: "{{ steps.summary }}"

Dependencies of a step (:func:`dependencies`) are its ``depends_on``, the condition steps that
name it in a branch, and the step whose ``on_failure`` routes to it.  :func:`check_definition`
finds what Pydantic cannot: duplicate ids, unknown references, cycles, template syntax errors and
templates reading steps that are not among their ancestors; each problem is a field path + message.
"""

from __future__ import annotations

import graphlib
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agentlightning.validation import JsonObject, Text
from agentlightning.vocabulary import TaskPriority, WorkflowVisibility
from agentlightning.workflows import templates

MAX_STEPS = 100
#: Fan-out bound: items of one ``for_each``.
MAX_ITEMS = 1000
STEP_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
NAME_PATTERN = r"^[A-Za-z0-9_.\-]+$"

StepId = Annotated[str, Field(pattern=STEP_ID_PATTERN, description="Letters, digits and _; a valid identifier")]
TemplateText = Annotated[Text, Field(min_length=1, max_length=templates.MAX_TEMPLATE_CHARS)]
Ref = Annotated[Text, Field(min_length=1, max_length=255)]


class RetryPolicy(BaseModel):
    """How often a step is tried, and the wait before a retry (doubling each time)."""

    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(default=1, ge=1, le=10)
    backoff_seconds: float = Field(default=1.0, ge=0, le=3600)


class _StepBase(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: StepId
    description: Annotated[Text, Field(max_length=2000)] | None = None
    depends_on: list[StepId] = Field(default_factory=list, max_length=MAX_STEPS)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    #: Per attempt; an attempt past it is cancelled and counts as failed.
    timeout_seconds: float | None = Field(default=None, gt=0, le=86_400)
    #: An expression giving a list: the step runs once per item (``item``, ``index``).
    for_each: TemplateText | None = None
    #: ``fail`` (the run fails), ``continue`` (dependents run, this output is null) or a step id
    #: that runs only when this step fails.
    on_failure: Annotated[Text, Field(pattern=STEP_ID_PATTERN, max_length=64)] = "fail"


class AgentStepDef(_StepBase):
    """A task for an agent (by id or name, or the best agent of a type), through the task queue."""

    kind: Literal["agent"]
    agent: int | Ref | None = None
    agent_type: Annotated[Text, Field(min_length=1, max_length=100)] | None = None
    task: TemplateText
    context: JsonObject = Field(default_factory=dict)
    priority: TaskPriority = "medium"

    @model_validator(mode="after")
    def _one_target(self) -> AgentStepDef:
        if (self.agent is None) == (self.agent_type is None):
            raise ValueError("give exactly one of agent (id or name) and agent_type")
        return self


class ToolStepDef(_StepBase):
    """One call of a registered tool with templated arguments."""

    kind: Literal["tool"]
    tool: Annotated[Text, Field(min_length=1, max_length=100)]
    args: JsonObject = Field(default_factory=dict)


class ConditionStepDef(_StepBase):
    """Evaluates ``if``; the steps of the branch not taken are skipped."""

    kind: Literal["condition"]
    if_: TemplateText = Field(alias="if")
    then: list[StepId] = Field(default_factory=list, max_length=MAX_STEPS)
    else_: list[StepId] = Field(default_factory=list, alias="else", max_length=MAX_STEPS)


class SubWorkflowStepDef(_StepBase):
    """Runs another workflow (by id or name) with a templated input; its output is the run's output."""

    kind: Literal["workflow"]
    workflow: int | Ref
    input: JsonObject = Field(default_factory=dict)


StepDef = Annotated[
    AgentStepDef | ToolStepDef | ConditionStepDef | SubWorkflowStepDef,
    Field(discriminator="kind"),
]


class WorkflowDefinition(BaseModel):
    """The DAG: steps, and optionally a template for the run's output (default: every step's output)."""

    model_config = ConfigDict(extra="forbid")

    steps: list[StepDef] = Field(min_length=1, max_length=MAX_STEPS)
    output: Any = None


def _yaml_document(data: Any) -> Any:
    """Replace ``{"yaml": "<document>"}`` by the document's fields (explicit fields win)."""
    if isinstance(data, dict) and isinstance(data.get("yaml"), str):
        text = data["yaml"]
        if len(text) > 1_000_000:
            raise ValueError("yaml document larger than 1 MB")
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"yaml does not parse: {exc}") from None
        if not isinstance(document, dict):
            raise ValueError("yaml must be a mapping with steps")
        merged = {**document, **{k: v for k, v in data.items() if k != "yaml"}}
        return merged
    return data


class WorkflowCreate(WorkflowDefinition):
    """Body of ``POST /api/v2/workflows``: a name plus the definition (or ``yaml``: the whole
    document as YAML text)."""

    name: Annotated[Text, Field(min_length=1, max_length=255, pattern=NAME_PATTERN)]
    description: Annotated[Text, Field(max_length=4000)] | None = None
    visibility: WorkflowVisibility = "private"

    @field_validator("name")
    @classmethod
    def _not_a_number(cls, value: str) -> str:
        if value.isdigit():
            raise ValueError("a name cannot be all digits (it would read as an id)")
        return value

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, data: Any) -> Any:
        return _yaml_document(data)


class WorkflowUpdate(WorkflowDefinition):
    """Body of ``PUT /api/v2/workflows/{id}``: a new definition (a new version)."""

    description: Annotated[Text, Field(max_length=4000)] | None = None
    visibility: WorkflowVisibility | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, data: Any) -> Any:
        return _yaml_document(data)


@dataclass(frozen=True, slots=True)
class Problem:
    """One invalid field of a definition."""

    field: str
    message: str
    type: str = "workflow_definition"

    def to_dict(self) -> dict[str, str]:
        """The ``details.errors`` entry."""
        return {"field": self.field, "message": self.message, "type": self.type}


def definition_dict(definition: WorkflowDefinition) -> dict[str, Any]:
    """The stored JSON form of a definition (aliases such as ``if`` restored)."""
    return {
        "steps": [s.model_dump(mode="json", by_alias=True, exclude_none=True) for s in definition.steps],
        "output": definition.output,
    }


def load_definition(data: dict[str, Any]) -> WorkflowDefinition:
    """A stored definition back as a model (stored ones were validated when created)."""
    return WorkflowDefinition.model_validate(data)


def branch_owner(definition: WorkflowDefinition) -> dict[str, tuple[str, str]]:
    """Step id -> (condition step id, ``then`` | ``else``) for steps on a branch."""
    owner: dict[str, tuple[str, str]] = {}
    for step in definition.steps:
        if isinstance(step, ConditionStepDef):
            for target in step.then:
                owner[target] = (step.id, "then")
            for target in step.else_:
                owner[target] = (step.id, "else")
    return owner


def failure_handlers(definition: WorkflowDefinition) -> dict[str, str]:
    """Handler step id -> the step whose failure it handles."""
    return {s.on_failure: s.id for s in definition.steps if s.on_failure not in ("fail", "continue")}


def dependencies(definition: WorkflowDefinition) -> dict[str, list[str]]:
    """Every step's dependencies: ``depends_on``, its branch's condition, the step it handles."""
    deps: dict[str, list[str]] = {s.id: list(dict.fromkeys(s.depends_on)) for s in definition.steps}
    for target, (condition, _) in branch_owner(definition).items():
        if target in deps and condition not in deps[target]:
            deps[target].append(condition)
    for handler, failing in failure_handlers(definition).items():
        if handler in deps and failing not in deps[handler]:
            deps[handler].append(failing)
    return deps


def _templates_of(step: Any) -> list[tuple[str, str, bool]]:
    """``(field suffix, text, is_expression)`` of every template of a step."""
    found: list[tuple[str, str, bool]] = []

    def walk(value: Any, path: str) -> None:
        if isinstance(value, str):
            found.append((path, value, False))
        elif isinstance(value, dict):
            for key, child in value.items():
                walk(child, f"{path}.{key}")
        elif isinstance(value, list):
            for i, child in enumerate(value):
                walk(child, f"{path}.{i}")

    if isinstance(step, AgentStepDef):
        walk(step.task, "task")
        walk(step.context, "context")
    elif isinstance(step, ToolStepDef):
        walk(step.args, "args")
    elif isinstance(step, SubWorkflowStepDef):
        walk(step.input, "input")
    elif isinstance(step, ConditionStepDef):
        found.append(("if", step.if_, True))
    if step.for_each is not None:
        found.append(("for_each", step.for_each, True))
    return found


def check_definition(definition: WorkflowDefinition, prefix: str = "body") -> list[Problem]:
    """Structural problems: ids, references, cycles, template syntax and what templates read."""
    problems: list[Problem] = []
    index: dict[str, int] = {}
    for i, step in enumerate(definition.steps):
        if step.id in index:
            problems.append(Problem(f"{prefix}.steps.{i}.id", f"duplicate step id '{step.id}'"))
        else:
            index[step.id] = i

    def unknown(field: str, ref: str, what: str) -> None:
        problems.append(Problem(field, f"{what} '{ref}' is not a step of this workflow", "unknown_step"))

    branched: dict[str, str] = {}
    for i, step in enumerate(definition.steps):
        base = f"{prefix}.steps.{i}"
        for j, dep in enumerate(step.depends_on):
            if dep not in index:
                unknown(f"{base}.depends_on.{j}", dep, "dependency")
            elif dep == step.id:
                problems.append(Problem(f"{base}.depends_on.{j}", "a step cannot depend on itself", "cycle"))
        if step.on_failure not in ("fail", "continue"):
            if step.on_failure not in index:
                unknown(f"{base}.on_failure", step.on_failure, "failure handler")
            elif step.on_failure == step.id:
                problems.append(Problem(f"{base}.on_failure", "a step cannot handle its own failure", "cycle"))
        if isinstance(step, ConditionStepDef):
            if step.for_each is not None:
                problems.append(Problem(f"{base}.for_each", "a condition step cannot fan out"))
            for branch, targets in (("then", step.then), ("else", step.else_)):
                for j, target in enumerate(targets):
                    if target not in index:
                        unknown(f"{base}.{branch}.{j}", target, "branch target")
                    elif target == step.id:
                        problems.append(Problem(f"{base}.{branch}.{j}", "a condition cannot branch to itself", "cycle"))
                    elif target in branched and branched[target] != f"{step.id}.{branch}":
                        problems.append(
                            Problem(f"{base}.{branch}.{j}", f"step '{target}' is already on branch {branched[target]}")
                        )
                    else:
                        branched[target] = f"{step.id}.{branch}"
    if problems:
        return problems

    deps = dependencies(definition)
    sorter = graphlib.TopologicalSorter(deps)
    try:
        order = list(sorter.static_order())
    except graphlib.CycleError as exc:
        cycle = list(exc.args[1])
        first = cycle[0]
        return [
            Problem(
                f"{prefix}.steps.{index[first]}.depends_on",
                "dependency cycle: " + " -> ".join(cycle),
                "cycle",
            )
        ]
    ancestors: dict[str, set[str]] = {}
    for step_id in order:
        found: set[str] = set()
        for dep in deps[step_id]:
            found |= {dep} | ancestors[dep]
        ancestors[step_id] = found

    for i, step in enumerate(definition.steps):
        for suffix, text, is_expression in _templates_of(step):
            field = f"{prefix}.steps.{i}.{suffix}"
            try:
                if is_expression:
                    templates.compile_expression(text)
                    tree = templates.expression_tree(text)
                else:
                    tree = templates.parse(text)
            except templates.TemplateError as exc:
                problems.append(Problem(field, f"template syntax error: {exc}", "template_syntax"))
                continue
            for ref in sorted(set(templates.step_references(tree))):
                if ref not in index:
                    problems.append(Problem(field, f"template reads steps.{ref}: no such step", "unknown_step"))
                elif ref not in ancestors[step.id]:
                    problems.append(
                        Problem(field, f"template reads steps.{ref} but the step does not depend on '{ref}'")
                    )
    if definition.output is not None:
        paths: list[tuple[str, str]] = []

        def walk(value: Any, path: str) -> None:
            if isinstance(value, str):
                paths.append((path, value))
            elif isinstance(value, dict):
                for key, child in value.items():
                    walk(child, f"{path}.{key}")
            elif isinstance(value, list):
                for j, child in enumerate(value):
                    walk(child, f"{path}.{j}")

        walk(definition.output, f"{prefix}.output")
        for field, text in paths:
            try:
                tree = templates.parse(text)
            except templates.TemplateError as exc:
                problems.append(Problem(field, f"template syntax error: {exc}", "template_syntax"))
                continue
            for ref in templates.step_references(tree):
                if ref not in index:
                    problems.append(Problem(field, f"template reads steps.{ref}: no such step", "unknown_step"))
    return problems
