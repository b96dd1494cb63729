"""The built-in suite's tasks, generated deterministically (seeded) from code and bundled files.

Pure functions, no database: :func:`builtin_items` returns every task of the ``builtin`` suite
with its verifier spec, a reference answer the verifier accepts and a wrong answer it rejects
(the tests check both for every task). The same call always returns the same tasks, ids and
splits, which is what makes ``install_suite`` idempotent and the held-out set stable.

Kinds of tasks:

* ``arithmetic``: word problems with large multiplications and percentages (the calculator pays off);
* ``format``: the verifier requires an output format the task states (capitals, ISO dates, JSON...);
* ``knowledge``: questions about fictional organisations whose profiles the suite installs in the
  knowledge base (``data/knowledge.json``), so only a knowledge-base look-up answers them;
* ``sql``: read-only questions over the sample shop database (``data/shop.sql``), answered with
  the ``sql_query`` tool against the data source :data:`SQL_SOURCE_NAME`;
* ``function_calling``: simple items of the Berkeley Function Calling Leaderboard, read from the
  ``bfcl-eval`` package's data files when it is installed (see :mod:`.bfcl`).
"""

from __future__ import annotations

import json
import random
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from agentlightning.vocabulary import SuiteSplit, SuiteTaskType

SUITE = "builtin"
#: Name of the suite's SQL data source (an entry of ``SQL_DATA_SOURCES``).
SQL_SOURCE_NAME = "agl_suite_shop"
SQL_TABLES = ("customers", "products", "orders")
#: One task in this many goes to the held-out split (the rest to train).
HELDOUT_EVERY = 4
SEED = 20261129
ANSWER_LINE = "End your reply with a line 'Answer: <number>', the number in plain digits (no thousands separators)."

#: The starter agent type that fits each kind of task (``agents/templates.py``).
AGENT_TYPES: dict[SuiteTaskType, str] = {
    "arithmetic": "math_agent",
    "format": "assistant",
    "knowledge": "research_agent",
    "sql": "data_agent",
    "function_calling": "assistant",
}


@dataclass(frozen=True)
class SuiteItem:
    """One generated task: what the table stores, plus a reference and a wrong answer."""

    id: str
    split: SuiteSplit
    task_type: SuiteTaskType
    prompt: str
    verifier: dict[str, Any]
    reference: str
    wrong: str
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def agent_type(self) -> str:
        """The starter agent type that fits the task."""
        return AGENT_TYPES[self.task_type]


def split_of(index: int) -> SuiteSplit:
    """The split of the ``index``-th task of a kind (or the ``index``-th round of a generator that
    cycles through sub-kinds, so each sub-kind is held out alike): every fourth one is held out."""
    return "heldout" if index % HELDOUT_EVERY == HELDOUT_EVERY - 1 else "train"


def data_text(name: str) -> str:
    """A bundled data file of the suite (package data ``rl/suite/data/<name>``)."""
    return resources.files("agentlightning.rl.suite").joinpath("data").joinpath(name).read_text(encoding="utf-8")


def _numeric(expected: float, tolerance: float = 0.0) -> dict[str, Any]:
    return {"type": "numeric", "expected": expected, "tolerance": tolerance, "relative": False}


def _answer(value: float | int) -> str:
    return f"Answer: {value}"


def _item(
    kind: SuiteTaskType,
    prefix: str,
    index: int,
    prompt: str,
    verifier: dict[str, Any],
    reference: str,
    wrong: str,
    *,
    rounds_of: int = 1,
    **context: Any,
) -> SuiteItem:
    """One suite item; ``rounds_of`` is the number of sub-kinds the generator cycles through."""
    return SuiteItem(
        id=f"{prefix}-{index:04d}",
        split=split_of(index // rounds_of),
        task_type=kind,
        prompt=prompt,
        verifier=verifier,
        reference=reference,
        wrong=wrong,
        context={"task_type": kind, **context},
    )


# --- arithmetic -------------------------------------------------------------------------------


def _multiply(rng: random.Random) -> tuple[str, float, float]:
    a, b = rng.randint(1_200, 98_000), rng.randint(340, 9_900)
    thing = rng.choice(["crates", "pallets", "containers", "batches"])
    return (f"A warehouse ships {a} {thing}, each holding {b} parts. How many parts does it ship in total?", a * b, 0.0)


def _percent(rng: random.Random) -> tuple[str, float, float]:
    p, n = rng.randint(11, 399) / 10, rng.randint(10_000, 990_000)
    return f"What is {p}% of {n}? Give the result to 2 decimal places.", round(p * n / 100, 2), 0.01


def _discount(rng: random.Random) -> tuple[str, float, float]:
    price, off, tax = rng.randint(10_000, 999_999) / 100, rng.randint(5, 45), rng.randint(3, 25)
    final = round(price * (1 - off / 100) * (1 + tax / 100), 2)
    return (
        f"An item costs {price} credits. It is discounted by {off}% and the discounted price is then taxed "
        f"at {tax}%. What is the final price, rounded to 2 decimal places?",
        final,
        0.01,
    )


def _growth(rng: random.Random) -> tuple[str, float, float]:
    n, p, years = rng.randint(2_000, 90_000), rng.randint(2, 19), rng.randint(3, 9)
    value = round(n * (1 + p / 100) ** years)
    return (
        f"A colony of {n} bacteria grows by {p}% per hour, compounded hourly. How many bacteria are there "
        f"after {years} hours, rounded to the nearest whole number?",
        value,
        1.0,
    )


def arithmetic_items(count: int = 80) -> list[SuiteItem]:
    """Word problems with large numbers; numeric verifiers on the final ``Answer:`` number."""
    rng = random.Random(SEED + 1)
    makers: list[Callable[[random.Random], tuple[str, float, float]]] = [_multiply, _percent, _discount, _growth]
    items = []
    for i in range(count):
        text, expected, tolerance = makers[i % len(makers)](rng)
        shown = int(expected) if float(expected).is_integer() else expected
        wrong = round(expected * 1.07 + 13, 2)
        items.append(
            _item(
                "arithmetic",
                "arith",
                i,
                f"{text}\n{ANSWER_LINE}",
                _numeric(shown, tolerance),
                _answer(shown),
                _answer(wrong),
                rounds_of=len(makers),
            )
        )
    return items


# --- answer format ----------------------------------------------------------------------------

WORDS = (
    "lantern harbour violet copper meadow glacier quartz saffron thimble orchard cobalt "
    "falcon juniper marble nimbus pepper ribbon tundra willow zephyr amber beacon canyon delta "
    "ember fjord granite harvest island jasmine kestrel lagoon mosaic nectar opal prairie quill "
    "raven summit timber"
).split()
NAMES = "Alice Bruno Chen Dalia Emeka Farah Goran Hana Ivo Jonas".split()
MONTHS = ("January February March April May June July August September October November December").split()


def _exact(expected: str) -> dict[str, Any]:
    return {"type": "exact", "expected": expected, "case_sensitive": True, "strip": True}


FORMAT_KINDS = 6  # capitals, ISO date, JSON object, reversed word, sorted numbers, sentence


def _format_item(i: int, rng: random.Random) -> tuple[str, dict[str, Any], str, str]:
    kind = i % FORMAT_KINDS
    if kind == 0:
        word = rng.choice(WORDS)
        return (
            f"Reply with only the word '{word}' written in capital letters, nothing else.",
            _exact(word.upper()),
            word.upper(),
            word,
        )
    if kind == 1:
        year, month, day = rng.randint(1950, 2049), rng.randint(1, 12), rng.randint(1, 28)
        iso = f"{year:04d}-{month:02d}-{day:02d}"
        return (
            f"Write the date {MONTHS[month - 1]} {day}, {year} in ISO 8601 format (YYYY-MM-DD) and nothing else.",
            {"type": "regex", "pattern": rf"^\s*{re.escape(iso)}\s*$"},
            iso,
            f"{day}/{month}/{year}",
        )
    if kind == 2:
        name, age = rng.choice(NAMES), rng.randint(18, 90)
        schema = {
            "type": "object",
            "properties": {"name": {"const": name}, "age": {"const": age}},
            "required": ["name", "age"],
            "additionalProperties": False,
        }
        return (
            f'Return only a JSON object with the keys "name" (a string) and "age" (an integer) for this '
            f"sentence: '{name} is {age} years old.'",
            {"type": "json_schema", "schema": schema},
            json.dumps({"name": name, "age": age}),
            f"{name} is {age}",
        )
    if kind == 3:
        word = rng.choice(WORDS)
        return (
            f"Reply with the word '{word}' spelled backwards, in lower case, and nothing else.",
            _exact(word[::-1]),
            word[::-1],
            word,
        )
    if kind == 4:
        numbers = rng.sample(range(1, 500), 5)
        if numbers == sorted(numbers):
            numbers.reverse()
        shown, answer = ", ".join(map(str, numbers)), ", ".join(map(str, sorted(numbers)))
        return (
            f"Sort these numbers in ascending order and reply with them separated by a comma and a space, "
            f"nothing else: {shown}",
            _exact(answer),
            answer,
            shown,
        )
    words = rng.sample(WORDS, 3)
    return (
        f"Write one sentence that uses the words '{words[0]}', '{words[1]}' and '{words[2]}'.",
        {"type": "contains", "expected": words, "all": True},
        f"The {words[0]} and the {words[1]} were found beside the {words[2]}.",
        f"Only the {words[0]}.",
    )


def format_items(count: int = 240) -> list[SuiteItem]:
    """Tasks whose verifier requires the output format the task states (at most ``len(WORDS)``
    of each kind: the capitals and reversal tasks each use a word once)."""
    rng = random.Random(SEED + 2)
    items: list[SuiteItem] = []
    seen: set[str] = set()
    for i in range(count):
        # Draw again on a repeated prompt: a task in both splits would leak the held-out set.
        prompt, verifier, reference, wrong = _format_item(i, rng)
        while prompt in seen:
            prompt, verifier, reference, wrong = _format_item(i, rng)
        seen.add(prompt)
        items.append(_item("format", "format", i, prompt, verifier, reference, wrong, rounds_of=FORMAT_KINDS))
    return items


# --- knowledge base ---------------------------------------------------------------------------


def knowledge_documents() -> list[dict[str, Any]]:
    """The bundled documents (fictional organisations) with their questions."""
    docs: list[dict[str, Any]] = json.loads(data_text("knowledge.json"))
    return docs


def knowledge_items() -> list[SuiteItem]:
    """Questions answerable only from the documents the suite installs in the knowledge base."""
    items = []
    questions = [q for doc in knowledge_documents() for q in doc["questions"]]
    for i, q in enumerate(questions):
        prompt = f"Use the knowledge base to answer: {q['question']}"
        if q["type"] == "numeric":
            verifier, reference, wrong = _numeric(q["answer"]), _answer(q["answer"]), _answer(q["answer"] + 3)
            prompt += f"\n{ANSWER_LINE}"
        else:
            verifier = {"type": "contains", "expected": q["answer"], "all": True}
            reference, wrong = f"The chief engineer is {q['answer']}.", "The knowledge base does not say."
        items.append(_item("knowledge", "kb", i, prompt, verifier, reference, wrong))
    return items


# --- SQL --------------------------------------------------------------------------------------


def shop_database() -> sqlite3.Connection:
    """An in-memory copy of the sample shop (to compute the reference answers)."""
    conn = sqlite3.connect(":memory:")
    conn.executescript(data_text("shop.sql"))
    return conn


def _sql_questions(conn: sqlite3.Connection) -> list[tuple[str, float, float]]:
    out: list[tuple[str, float, float]] = []
    customers = conn.execute("SELECT id, name FROM customers ORDER BY id").fetchall()
    for _, name in customers[::2][:10]:
        (n,) = conn.execute(
            "SELECT COUNT(*) FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.name = ?", (name,)
        ).fetchone()
        out.append((f"How many orders has the customer '{name}' placed?", n, 0.0))
    for (category,) in conn.execute("SELECT DISTINCT category FROM products ORDER BY category"):
        (q,) = conn.execute(
            "SELECT COALESCE(SUM(o.quantity), 0) FROM orders o JOIN products p ON p.id = o.product_id "
            "WHERE p.category = ?",
            (category,),
        ).fetchone()
        out.append((f"What is the total quantity ordered of products in the category '{category}'?", q, 0.0))
    for (city,) in conn.execute("SELECT DISTINCT city FROM customers ORDER BY city"):
        (n,) = conn.execute("SELECT COUNT(*) FROM customers WHERE city = ?", (city,)).fetchone()
        out.append((f"How many customers live in {city}?", n, 0.0))
    for name, price in conn.execute("SELECT name, price FROM products ORDER BY id LIMIT 8"):
        out.append((f"What is the price of the product '{name}'?", price, 0.01))
    for month in range(1, 13):
        (revenue,) = conn.execute(
            "SELECT ROUND(COALESCE(SUM(o.quantity * p.price), 0), 2) FROM orders o "
            "JOIN products p ON p.id = o.product_id WHERE substr(o.order_date, 1, 7) = ?",
            (f"2025-{month:02d}",),
        ).fetchone()
        out.append(
            (
                f"What was the total revenue (quantity times price) of the orders placed in "
                f"{MONTHS[month - 1]} 2025, rounded to 2 decimal places?",
                revenue,
                0.01,
            )
        )
    return out


def sql_items() -> list[SuiteItem]:
    """Read-only questions over the sample shop, through the ``sql_query`` tool."""
    conn = shop_database()
    try:
        questions = _sql_questions(conn)
    finally:
        conn.close()
    items = []
    for i, (question, expected, tolerance) in enumerate(questions):
        shown = int(expected) if float(expected).is_integer() else expected
        prompt = (
            f"Using the sql_query tool on the data source '{SQL_SOURCE_NAME}' (tables customers, products, "
            f"orders), answer: {question}\n{ANSWER_LINE}"
        )
        items.append(
            _item(
                "sql",
                "sql",
                i,
                prompt,
                _numeric(shown, tolerance),
                _answer(shown),
                _answer(round(expected + 11.5, 2)),
                data_source=SQL_SOURCE_NAME,
            )
        )
    return items


def builtin_items(*, include_function_calling: bool = True) -> list[SuiteItem]:
    """Every task of the ``builtin`` suite, in a fixed order."""
    from agentlightning.rl.suite.bfcl import function_calling_items

    items = arithmetic_items() + format_items() + knowledge_items() + sql_items()
    if include_function_calling:
        items += function_calling_items()
    return items
