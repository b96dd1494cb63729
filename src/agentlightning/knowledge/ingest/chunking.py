"""Split documents into search-sized chunks on headings and paragraphs, with overlap.

Markdown structure comes from ``markdown-it-py`` (a CommonMark parser), so a ``#`` inside a code
fence is never taken for a heading and a fenced block is never cut in the middle unless it alone
is larger than a chunk. Each chunk remembers the headings above it, which become part of its title.

Chunks hold whole blocks (paragraphs, lists, code blocks) up to ``max_chars``; the next chunk starts
with the tail of the previous one (``overlap`` characters, cut at a sentence or word boundary) so a
fact that straddles the boundary is findable from either side. A block longer than ``max_chars``
is split at sentence ends, then at spaces.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from markdown_it import MarkdownIt

DEFAULT_MAX_CHARS = 1500
DEFAULT_OVERLAP = 200

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_BLANK_LINES = re.compile(r"\n\s*\n")


@dataclass(frozen=True)
class Chunk:
    """One piece of a document: its text, the headings it sits under, and its position."""

    text: str
    headings: tuple[str, ...] = ()
    index: int = 0

    def title(self, document_title: str) -> str:
        """The document title followed by the heading path, e.g. ``Guide › Install › Linux``."""
        parts = [document_title, *[h for h in self.headings if h and h != document_title]]
        return " › ".join(p for p in parts if p)


@dataclass(frozen=True)
class _Section:
    headings: tuple[str, ...]
    blocks: list[str]


def _split_long(block: str, max_chars: int) -> Iterator[str]:
    """Cut a block longer than ``max_chars`` at sentence ends, then at spaces."""
    if len(block) <= max_chars:
        yield block
        return
    current = ""
    for sentence in _SENTENCE_END.split(block):
        while len(sentence) > max_chars:
            cut = sentence.rfind(" ", 0, max_chars)
            cut = cut if cut > max_chars // 2 else max_chars
            head, sentence = sentence[:cut].rstrip(), sentence[cut:].lstrip()
            if current:
                yield current
                current = ""
            yield head
        if current and len(current) + 1 + len(sentence) > max_chars:
            yield current
            current = sentence
        else:
            current = f"{current} {sentence}" if current else sentence
    if current:
        yield current


def _tail(text: str, overlap: int) -> str:
    """The last ``overlap`` characters of ``text``, starting at a sentence or word boundary."""
    if overlap <= 0 or not text:
        return ""
    if len(text) <= overlap:
        return text
    window = text[-overlap:]
    sentence = _SENTENCE_END.search(window)
    if sentence:
        return window[sentence.end() :]
    space = window.find(" ")
    return window[space + 1 :] if 0 <= space < len(window) - 1 else window


def pack_blocks(
    blocks: Iterable[str], *, max_chars: int = DEFAULT_MAX_CHARS, overlap: int = DEFAULT_OVERLAP
) -> list[str]:
    """Greedily join blocks into chunks of at most ``max_chars`` (plus overlap) characters."""
    if max_chars <= 0:
        raise ValueError("max_chars must be positive")
    overlap = max(0, min(overlap, max_chars // 2))
    pieces = [p for b in blocks if b.strip() for p in _split_long(b.strip(), max_chars)]
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for piece in pieces:
        if current and size + 2 + len(piece) > max_chars:
            chunks.append("\n\n".join(current))
            carry = _tail(chunks[-1], overlap)
            current, size = ([carry], len(carry)) if carry else ([], 0)
        current.append(piece)
        size += len(piece) + (2 if size else 0)
    if current:
        chunks.append("\n\n".join(current))
    return chunks


def _markdown_sections(text: str) -> list[_Section]:
    """Top-level blocks of a Markdown document grouped under their heading path."""
    lines = text.splitlines()
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    sections: list[_Section] = []
    path: list[tuple[int, str]] = []
    blocks: list[str] = []

    def flush() -> None:
        if blocks:
            sections.append(_Section(tuple(h for _, h in path), list(blocks)))
            blocks.clear()

    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.type == "heading_open":
            flush()
            level = int(token.tag[1:])
            heading = tokens[i + 1].content.strip() if i + 1 < len(tokens) else ""
            while path and path[-1][0] >= level:
                path.pop()
            path.append((level, heading))
            i += 3  # heading_open, inline, heading_close
            continue
        if token.level == 0 and token.map is not None and token.nesting in (0, 1):
            start, end = token.map
            blocks.append("\n".join(lines[start:end]).strip())
            # Skip to the matching close token of a container block.
            if token.nesting == 1:
                depth = 1
                i += 1
                while i < len(tokens) and depth:
                    depth += tokens[i].nesting
                    i += 1
                continue
        i += 1
    flush()
    return sections


def chunk_markdown(text: str, *, max_chars: int = DEFAULT_MAX_CHARS, overlap: int = DEFAULT_OVERLAP) -> list[Chunk]:
    """Chunks of a Markdown document: a new chunk at every heading, paragraphs packed within."""
    chunks: list[Chunk] = []
    for section in _markdown_sections(text):
        for piece in pack_blocks(section.blocks, max_chars=max_chars, overlap=overlap):
            chunks.append(Chunk(piece, section.headings, len(chunks)))
    return chunks


def chunk_text(text: str, *, max_chars: int = DEFAULT_MAX_CHARS, overlap: int = DEFAULT_OVERLAP) -> list[Chunk]:
    """Chunks of plain text: paragraphs (blank-line separated) packed up to ``max_chars``."""
    blocks = _BLANK_LINES.split(text.replace("\r\n", "\n"))
    return [Chunk(piece, (), i) for i, piece in enumerate(pack_blocks(blocks, max_chars=max_chars, overlap=overlap))]
