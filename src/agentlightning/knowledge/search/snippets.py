"""Highlighted snippets: the part of an item's text that best matches the query, terms marked.

Words are compared by their Snowball English stem (the stemmer PostgreSQL's ``english``
configuration uses), so ``indexing`` in the text lights up for a query about ``indexes``. The
snippet is the window of ``max_chars`` with the most distinct matched terms (ties go to the
earliest), cut at word boundaries; the text is HTML-escaped and matches are wrapped in
``<mark>...</mark>``, so the result is safe to render. Semantic hits that share no word with the
query get the start of the text.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from functools import lru_cache

import snowballstemmer

DEFAULT_SNIPPET_CHARS = 240
MARK_OPEN, MARK_CLOSE = "<mark>", "</mark>"

_WORD = re.compile(r"\w+", re.UNICODE)
_stemmer = snowballstemmer.stemmer("english")


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """The Snowball English stem of ``word`` (lower-cased)."""
    return _stemmer.stemWord(word.lower())


def _best_window(starts: list[int], ends: list[int], stems: list[str | None], max_chars: int) -> tuple[int, int]:
    """Indices [first, last] of the word window with the most distinct matched stems."""
    best = (0, 0, 0)  # (distinct matches, first, last)
    matched = [i for i, s in enumerate(stems) if s is not None]
    for first in matched:
        seen: set[str] = set()
        last = first
        for j in matched:
            if j < first:
                continue
            if ends[j] - starts[first] > max_chars:
                break
            seen.add(stems[j])  # type: ignore[arg-type]
            last = j
        if len(seen) > best[0]:
            best = (len(seen), first, last)
    return best[1], best[2]


def highlight(text: str, terms: Iterable[str], *, max_chars: int = DEFAULT_SNIPPET_CHARS) -> str:
    """An HTML-safe snippet of ``text`` around the query ``terms`` with matches in ``<mark>``."""
    wanted = {stem(t) for t in terms if t}
    words = list(_WORD.finditer(text))
    if not words:
        return html.escape(text[:max_chars])
    starts = [m.start() for m in words]
    ends = [m.end() for m in words]
    stems: list[str | None] = [s if (s := stem(m.group())) in wanted else None for m in words]
    if any(s is not None for s in stems):
        first, last = _best_window(starts, ends, stems, max_chars)
        # Centre the matched span in the window by adding context on both sides.
        slack = max_chars - (ends[last] - starts[first])
        begin = max(0, starts[first] - slack // 2)
    else:
        begin = 0
    end = min(len(text), begin + max_chars)
    begin = max(0, min(begin, end - max_chars))
    # Snap to word boundaries.
    if begin > 0:
        space = text.find(" ", begin)
        begin = space + 1 if 0 <= space < end else begin
    if end < len(text):
        space = text.rfind(" ", begin, end)
        end = space if space > begin else end
    pieces: list[str] = ["…" if begin > 0 else ""]
    cursor = begin
    for match, matched in zip(words, stems):
        if matched is None or match.start() < begin or match.end() > end:
            continue
        pieces.append(html.escape(text[cursor : match.start()]))
        pieces.append(MARK_OPEN + html.escape(match.group()) + MARK_CLOSE)
        cursor = match.end()
    pieces.append(html.escape(text[cursor:end]))
    pieces.append("…" if end < len(text) else "")
    return "".join(pieces).replace("\n", " ")
