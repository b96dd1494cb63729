"""Turn files (Markdown, plain text, PDF, CSV, JSONL) into knowledge records ready to insert.

Every parser yields :class:`IngestRecord` objects: one per chunk of a prose document, one per row
of a CSV file or line of a JSONL file (long row contents are chunked too). Each record carries a
``content_hash`` over what it would store, which is how an import recognises what is already in
the database and why re-importing an unchanged file adds nothing; and the file's absolute path as
``source``, which is how re-importing a changed file replaces the file's previous records.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentlightning.knowledge.ingest.chunking import (
    DEFAULT_MAX_CHARS,
    DEFAULT_OVERLAP,
    Chunk,
    chunk_markdown,
    chunk_text,
)

TITLE_MAX = 500
CATEGORY_MAX = 100

_TITLE_KEYS = ("title", "name", "question", "subject", "heading")
_CONTENT_KEYS = ("content", "text", "body", "answer", "description")


class UnsupportedFile(ValueError):
    """The file's extension names no known format."""


def content_hash(title: str, content: str, category: str | None, tags: Sequence[str]) -> str:
    """SHA-256 over what identifies a record's content (not where it came from)."""
    canonical = json.dumps([title.strip(), content.strip(), category or "", sorted(tags)], ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class IngestRecord:
    """One knowledge item to create: the table's columns plus its content hash."""

    title: str
    content: str
    category: str | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    content_hash: str = ""
    #: The file the record came from (absolute path), or None for records created through the API.
    source: str | None = None

    def __post_init__(self) -> None:
        self.title = (self.title.strip() or "Untitled")[:TITLE_MAX]
        self.category = self.category[:CATEGORY_MAX] if self.category else None
        self.tags = sorted({t.strip() for t in self.tags if t and t.strip()})
        if not self.content_hash:
            self.content_hash = content_hash(self.title, self.content, self.category, self.tags)


@dataclass(frozen=True)
class ParseOptions:
    """Defaults applied to every record of an import, and the chunk sizes."""

    category: str | None = None
    tags: tuple[str, ...] = ()
    max_chars: int = DEFAULT_MAX_CHARS
    overlap: int = DEFAULT_OVERLAP


def _split_tags(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    text = str(value)
    separator = ";" if ";" in text else ","
    return [t for t in (p.strip() for p in text.split(separator)) if t]


def _first(row: Mapping[str, Any], keys: Sequence[str]) -> tuple[str | None, Any]:
    lowered = {str(k).lower().strip(): k for k in row}
    for key in keys:
        if key in lowered and row[lowered[key]] not in (None, ""):
            return lowered[key], row[lowered[key]]
    return None, None


def source_of(path: Path) -> str:
    """How an imported file is identified: its absolute path (so ``./a.md`` and ``/x/a.md`` match)."""
    return str(path.resolve())


def _records_from_chunks(
    chunks: list[Chunk], doc_title: str, source: str, options: ParseOptions, extra: dict[str, Any] | None = None
) -> Iterator[IngestRecord]:
    for chunk in chunks:
        metadata = {"source": source, "chunk": chunk.index, **(extra or {})}
        if chunk.headings:
            metadata["section"] = " › ".join(chunk.headings)
        yield IngestRecord(
            title=chunk.title(doc_title),
            content=chunk.text,
            category=options.category,
            tags=list(options.tags),
            metadata=metadata,
            source=source,
        )


def _markdown_title(text: str, fallback: str) -> str:
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# "):
            return stripped[2:].strip()
    return fallback


def parse_markdown(path: Path, options: ParseOptions) -> Iterator[IngestRecord]:
    """A Markdown file, chunked at headings (the first ``# `` heading is the title)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    title = _markdown_title(text, path.stem)
    chunks = chunk_markdown(text, max_chars=options.max_chars, overlap=options.overlap)
    yield from _records_from_chunks(chunks, title, source_of(path), options)


def parse_text(path: Path, options: ParseOptions) -> Iterator[IngestRecord]:
    """A plain-text file, chunked at paragraphs; the file name is the title."""
    text = path.read_text(encoding="utf-8", errors="replace")
    chunks = chunk_text(text, max_chars=options.max_chars, overlap=options.overlap)
    yield from _records_from_chunks(chunks, path.stem, source_of(path), options)


def parse_pdf(path: Path, options: ParseOptions) -> Iterator[IngestRecord]:
    """A PDF's extracted text (pypdf), chunked per page so each chunk knows its page number."""
    from pypdf import PdfReader

    reader = PdfReader(str(path))
    info_title = (reader.metadata.title if reader.metadata else None) or path.stem
    index = 0
    for page_number, page in enumerate(reader.pages, start=1):
        text = page.extract_text() or ""
        chunks = chunk_text(text, max_chars=options.max_chars, overlap=options.overlap)
        renumbered = [Chunk(c.text, c.headings, index + i) for i, c in enumerate(chunks)]
        index += len(chunks)
        yield from _records_from_chunks(renumbered, str(info_title), source_of(path), options, {"page": page_number})


def _record_from_mapping(
    row: Mapping[str, Any], source: str, position: int, options: ParseOptions, fallback_title: str
) -> Iterator[IngestRecord]:
    """Records from one CSV row / JSON object (several when its content must be chunked)."""
    title_key, title = _first(row, _TITLE_KEYS)
    content_key, content = _first(row, _CONTENT_KEYS)
    category_key, category = _first(row, ("category",))
    tags_key, tags = _first(row, ("tags",))
    used = {title_key, content_key, category_key, tags_key, "metadata"}
    metadata: dict[str, Any] = {}
    nested = row.get("metadata")
    if isinstance(nested, Mapping):
        metadata.update(nested)
    metadata.update({str(k): v for k, v in row.items() if k not in used and v not in (None, "")})
    if content is None:  # no content column: the remaining fields become the text
        content = "\n".join(f"{k}: {v}" for k, v in metadata.items())
    content = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
    if not content.strip():
        return
    title = str(title) if title is not None else f"{fallback_title} #{position}"
    all_tags = [*options.tags, *_split_tags(tags)]
    category = str(category) if category is not None else options.category
    pieces = chunk_text(content, max_chars=options.max_chars, overlap=options.overlap)
    for chunk in pieces:
        record_meta = {**metadata, "source": source, "row": position}
        if len(pieces) > 1:
            record_meta["chunk"] = chunk.index
        yield IngestRecord(
            title=title, content=chunk.text, category=category, tags=all_tags, metadata=record_meta, source=source
        )


def parse_csv(path: Path, options: ParseOptions) -> Iterator[IngestRecord]:
    """A CSV file with a header row: one record per row (``title``/``content``/``category``/``tags``
    columns are recognised, with common synonyms; other columns go to metadata)."""
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        for position, row in enumerate(csv.DictReader(handle), start=1):
            yield from _record_from_mapping(row, source_of(path), position, options, path.stem)


def parse_jsonl(path: Path, options: ParseOptions) -> Iterator[IngestRecord]:
    """A JSON Lines file: one object per line with the same fields as :func:`parse_csv`."""
    with path.open(encoding="utf-8", errors="replace") as handle:
        for position, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{position}: invalid JSON ({exc.msg})") from exc
            if not isinstance(obj, dict):
                raise ValueError(f"{path}:{position}: expected a JSON object")
            yield from _record_from_mapping(obj, source_of(path), position, options, path.stem)


PARSERS: dict[str, Callable[[Path, ParseOptions], Iterator[IngestRecord]]] = {
    ".md": parse_markdown,
    ".markdown": parse_markdown,
    ".txt": parse_text,
    ".text": parse_text,
    ".pdf": parse_pdf,
    ".csv": parse_csv,
    ".jsonl": parse_jsonl,
    ".ndjson": parse_jsonl,
}


def parse_file(path: Path, options: ParseOptions | None = None) -> Iterator[IngestRecord]:
    """Records from ``path``, by its extension; raises :class:`UnsupportedFile` for others."""
    parser = PARSERS.get(path.suffix.lower())
    if parser is None:
        raise UnsupportedFile(f"{path}: unsupported file type (supported: {', '.join(sorted(PARSERS))})")
    return parser(path, options or ParseOptions())


def discover(paths: Sequence[Path]) -> list[Path]:
    """The supported files named by ``paths`` (directories are walked recursively), sorted."""
    found: set[Path] = set()
    for path in paths:
        if path.is_dir():
            found.update(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in PARSERS)
        elif path.exists():
            found.add(path)
        else:
            raise FileNotFoundError(str(path))
    return sorted(found)
