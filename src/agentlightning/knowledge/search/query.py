"""The user's query language, shared by both databases: web-search syntax.

``"exact phrase"`` must appear as written, ``-word`` (or ``-"a phrase"``) must not appear,
``or`` between two terms accepts either; every other term is required. This is what PostgreSQL's
``websearch_to_tsquery`` accepts; :func:`to_fts5` translates the same syntax into an SQLite FTS5
``MATCH`` expression so both backends answer the same queries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# What PostgreSQL's 'english' configuration drops; FTS5 has no stop list, so drop them ourselves.
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being
    below between both but by can did do does doing down during each few for from further had has
    have having he her here hers herself him himself his how i if in into is it its itself just me
    more most my myself no nor not now of off on once only other our ours ourselves out over own s
    same she should so some such t than that the their theirs them themselves then there these they
    this those through to too under until up very was we were what when where which while who whom
    why will with you your yours yourself yourselves""".split()
)

_TOKEN = re.compile(r'(-?)"([^"]*)"?|(\S+)')
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass
class ParsedQuery:
    """A query split into required groups (each a list of alternatives), and exclusions.

    Every term is a tuple of words: one word for a plain term, several for a phrase.
    """

    required: list[list[tuple[str, ...]]] = field(default_factory=list)
    excluded: list[tuple[str, ...]] = field(default_factory=list)

    @property
    def positive_terms(self) -> list[str]:
        """Every word the user wants to see (for highlighting)."""
        return [word for group in self.required for term in group for word in term]

    @property
    def empty(self) -> bool:
        """True when nothing is required (a query of only stop words or exclusions)."""
        return not self.required


def _words(text: str) -> tuple[str, ...]:
    return tuple(w.lower() for w in _WORD.findall(text))


def parse(query: str) -> ParsedQuery:
    """Parse web-search syntax (see the module docstring)."""
    parsed = ParsedQuery()
    pending_or = False
    for match in _TOKEN.finditer(query):
        negated_phrase, phrase, bare = match.group(1), match.group(2), match.group(3)
        if bare is not None and bare.lower() == "or":
            pending_or = bool(parsed.required)
            continue
        if bare is not None:
            negated = bare.startswith("-") and len(bare) > 1
            words = tuple(w for w in _words(bare[1:] if negated else bare) if w not in STOPWORDS)
            if not words:
                continue
            terms = [words] if negated else [(w,) for w in words]
        else:
            negated = bool(negated_phrase)
            words = _words(phrase or "")
            if not words:
                continue
            terms = [words]
        if negated:
            parsed.excluded.append(terms[0])
            pending_or = False
            continue
        for i, term in enumerate(terms):
            if pending_or and i == 0:
                parsed.required[-1].append(term)
            else:
                parsed.required.append([term])
        pending_or = False
    return parsed


def _fts5_term(term: tuple[str, ...]) -> str:
    return '"' + " ".join(term).replace('"', '""') + '"'


def to_fts5(query: str) -> str | None:
    """An FTS5 ``MATCH`` expression for ``query``, or None when it requires nothing."""
    parsed = parse(query)
    if parsed.empty:
        return None
    groups = []
    for group in parsed.required:
        alternatives = [_fts5_term(t) for t in group]
        groups.append(alternatives[0] if len(alternatives) == 1 else "(" + " OR ".join(alternatives) + ")")
    expression = " AND ".join(groups)
    for term in parsed.excluded:
        expression += f" NOT {_fts5_term(term)}"
    return expression
