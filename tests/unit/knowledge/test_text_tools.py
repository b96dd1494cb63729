"""Pure functions of the knowledge package: chunking, parsers, query syntax, snippets, RRF."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentlightning.knowledge.ingest.chunking import chunk_markdown, chunk_text, pack_blocks
from agentlightning.knowledge.ingest.parsers import ParseOptions, UnsupportedFile, discover, parse_file
from agentlightning.knowledge.search.fusion import reciprocal_rank_fusion
from agentlightning.knowledge.search.query import parse, to_fts5
from agentlightning.knowledge.search.snippets import highlight

MARKDOWN = """# Guide

Intro.

## Install

Run the installer.

```bash
# not a heading
make install
```

### Linux

Use apt.

## Usage

Start it.
"""


def test_markdown_chunks_follow_headings_and_keep_code_fences() -> None:
    chunks = chunk_markdown(MARKDOWN)
    assert [c.headings for c in chunks] == [
        ("Guide",),
        ("Guide", "Install"),
        ("Guide", "Install", "Linux"),
        ("Guide", "Usage"),
    ]
    assert "# not a heading" in chunks[1].text and "make install" in chunks[1].text
    assert chunks[2].title("Guide") == "Guide › Install › Linux"


def test_packing_respects_size_and_overlaps() -> None:
    paragraphs = [f"Sentence {i} is here. Another one follows {i}." for i in range(40)]
    chunks = pack_blocks(paragraphs, max_chars=300, overlap=60)
    assert len(chunks) > 3
    assert all(len(c) <= 300 + 60 + 2 for c in chunks)
    for previous, current in zip(chunks, chunks[1:]):
        assert current.split("\n\n")[0] in previous, "each chunk starts with the tail of the previous one"
    long = "word " * 1000
    assert all(len(c) <= 300 for c in pack_blocks([long], max_chars=300, overlap=0))
    assert [c.text for c in chunk_text("a\n\nb")] == ["a\n\nb"]


def test_parsers_for_every_format(tmp_path: Path) -> None:
    (tmp_path / "doc.md").write_text(MARKDOWN)
    (tmp_path / "notes.txt").write_text("Para one.\n\nPara two.")
    (tmp_path / "faq.csv").write_text('title,answer,category,tags,owner\nReset,Use the link,acct,"a;b",bob\n')
    (tmp_path / "items.jsonl").write_text(
        json.dumps({"title": "T", "content": "C", "tags": ["x"], "metadata": {"k": 1}})
        + "\n\n"
        + json.dumps({"text": "body"})
        + "\n"
    )
    (tmp_path / "skip.bin").write_bytes(b"\0")
    files = discover([tmp_path])
    assert [f.name for f in files] == ["doc.md", "faq.csv", "items.jsonl", "notes.txt"]
    options = ParseOptions(category="docs", tags=("kb",))
    md = list(parse_file(tmp_path / "doc.md", options))
    assert md[0].title == "Guide" and md[0].category == "docs" and md[0].tags == ["kb"]
    assert md[0].metadata["source"].endswith("doc.md")
    csv_rows = list(parse_file(tmp_path / "faq.csv", options))
    assert (csv_rows[0].title, csv_rows[0].content, csv_rows[0].category) == ("Reset", "Use the link", "acct")
    assert csv_rows[0].tags == ["a", "b", "kb"] and csv_rows[0].metadata["owner"] == "bob"
    jsonl = list(parse_file(tmp_path / "items.jsonl", options))
    assert jsonl[0].metadata["k"] == 1 and jsonl[1].title == "items #3" and jsonl[1].content == "body"
    assert len({r.content_hash for r in md + csv_rows + jsonl}) == len(md + csv_rows + jsonl)
    # The same content parses to the same hashes (what makes re-imports add nothing).
    assert [r.content_hash for r in parse_file(tmp_path / "doc.md", options)] == [r.content_hash for r in md]
    with pytest.raises(UnsupportedFile):
        parse_file(tmp_path / "skip.bin")
    (tmp_path / "bad.jsonl").write_text("{not json}\n")
    with pytest.raises(ValueError):
        list(parse_file(tmp_path / "bad.jsonl"))


def _minimal_pdf(text: str) -> bytes:
    """A one-page PDF showing ``text`` (built by hand: no PDF writer is a dependency)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def test_pdf_parser_extracts_pages(tmp_path: Path) -> None:
    (tmp_path / "manual.pdf").write_bytes(_minimal_pdf("Rotate the API keys every quarter"))
    records = list(parse_file(tmp_path / "manual.pdf"))
    assert len(records) == 1
    assert "Rotate the API keys" in records[0].content and records[0].metadata["page"] == 1
    assert records[0].title == "manual"


def test_query_syntax_and_fts5_translation() -> None:
    parsed = parse('"connection pool" postgres -mysql redis OR memcached -"bad thing" the')
    assert parsed.required == [[("connection", "pool")], [("postgres",)], [("redis",), ("memcached",)]]
    assert parsed.excluded == [("mysql",), ("bad", "thing")]
    assert to_fts5('"connection pool" postgres -mysql redis or memcached') == (
        '"connection pool" AND "postgres" AND ("redis" OR "memcached") NOT "mysql"'
    )
    assert to_fts5("the -a") is None
    assert to_fts5('weird "quote') == '"weird" AND "quote"'
    assert to_fts5("c++ AND/OR x*") == '"c" AND "or" AND "x"'  # stop words dropped, operators quoted


def test_snippets_highlight_stems_and_escape_html() -> None:
    text = "Intro words. " * 30 + "We are indexing <big> tables with GIN indexes." + " Outro." * 30
    snippet = highlight(text, ["index", "table"], max_chars=120)
    assert "<mark>indexing</mark>" in snippet and "<mark>indexes</mark>" in snippet and "<mark>tables</mark>" in snippet
    assert "&lt;big&gt;" in snippet and snippet.startswith("…") and snippet.endswith("…")
    assert len(snippet) < 200
    assert highlight("Nothing matches here", ["zebra"]) == "Nothing matches here"


def test_reciprocal_rank_fusion() -> None:
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 4, 1]], k=60)
    assert [item for item, _ in fused] == [1, 3, 2, 4]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 63)
    weighted = reciprocal_rank_fusion([[1], [2]], weights=[1.0, 2.0])
    assert weighted[0][0] == 2
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([[1]], k=0)
