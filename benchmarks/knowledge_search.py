"""Knowledge search at scale on PostgreSQL: ingest rate, search latency, and recall.

1. Builds a synthetic corpus of ``--items`` (default 1,000,000) in a fresh PostgreSQL database
   through the real bulk path (``insert_records``: content-hash dedupe + COPY), and reports items/s.
   The corpus is designed to have the term statistics of real text (see ``_kb_corpus.py``): a
   Zipfian vocabulary of 40,000 generated word forms below the English stop words, ten topics whose
   words and labelled phrases ("connection pool", "cache hit", ...) are the common content terms
   (the most frequent match 5-15% of items), 30-90 word bodies and 4-9 word titles.
2. Runs the fixed full-text query set (``_kb_corpus.fulltext_queries``: rare, medium and common
   terms, multi-term queries, phrases, ``-exclusions``, ``or``), unfiltered and with category/tag
   filters, through the real search engine (cache bypassed); reports p50/p95/p99 overall and per
   query class, and each query's number of matching items.
3. In a second database of ``--semantic-items`` (default 100,000): embeds ``--embed-distinct``
   distinct texts with the packaged MiniLM model (each stored ``semantic-items / embed-distinct``
   times with different categories/tags when fewer), builds the in-process usearch index, and
   reports semantic and hybrid p50/p95/p99.
4. Recall@10 of full-text vs hybrid on a labelled query set planted in that corpus: each query has
   10 relevant items, 4 sharing its words and 6 paraphrasing it without them.

The last line is ``knowledge_p95_ms_1m=<full-text p95 at --items>``.

    python benchmarks/knowledge_search.py                       # the README figures
    python benchmarks/knowledge_search.py --skip-semantic --keep    # build the 1M corpus once...
    python benchmarks/knowledge_search.py --skip-semantic --fulltext-database URL   # ...re-measure it
    python benchmarks/knowledge_search.py --items 20000 --semantic-items 5000 --embed-distinct 5000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable

import asyncpg
import numpy as np
from _kb_corpus import CATEGORIES, TAGS, Corpus, fulltext_queries
from sqlalchemy import text

from agentlightning.knowledge.embeddings import embedding_text, get_embedder
from agentlightning.knowledge.ingest.bulk import insert_records, store_vectors
from agentlightning.knowledge.ingest.parsers import IngestRecord
from agentlightning.knowledge.schemas import SearchMode, SearchQuery
from agentlightning.knowledge.search.engine import run_search
from agentlightning.knowledge.search.vectors import get_backend
from agentlightning.storage.db import Database
from agentlightning.storage.migrate import upgrade

PG_ADMIN = os.environ.get("AGL_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")

LABELLED = [
    (
        "reset forgotten password",
        [
            "reset a forgotten password from the sign in page",
            "forgotten password reset e-mail link",
            "how to reset the password you have forgotten",
            "password reset for forgotten accounts",
        ],
        [
            "recover access when you cannot remember your login credentials",
            "regain entry to your account after losing the sign-in secret",
            "what to do if you no longer recall the passphrase for your profile",
            "restoring account access when the user has lost their credentials",
            "locked out because you cannot remember how to log in",
            "getting back into an account whose secret was lost",
        ],
    ),
    (
        "scale database reads",
        [
            "scale database reads with replicas",
            "read replicas help scale database reads",
            "scale database reads by caching queries",
            "options to scale database reads",
        ],
        [
            "add follower copies of the data store so more selects can be served",
            "spread select traffic across standby servers",
            "handle growing query load on postgres by adding hot standbys",
            "offload heavy reporting queries from the primary server",
            "more machines answering lookups when the data layer is saturated",
            "serving many concurrent selects without overloading the primary",
        ],
    ),
    (
        "reduce cloud bill",
        [
            "reduce the cloud bill by rightsizing",
            "ways to reduce cloud bill spending",
            "reduce your cloud bill with reserved capacity",
            "cloud bill reduction checklist",
        ],
        [
            "spend less on hosting by shutting down idle machines",
            "lower monthly infrastructure costs from the provider",
            "cut hosting expenses by picking smaller instance types",
            "save money on compute by turning off unused servers at night",
            "trim what we pay aws each month",
            "infrastructure spending is too high and must come down",
        ],
    ),
    (
        "speed up model training",
        [
            "speed up model training with mixed precision",
            "speed up model training using larger batches",
            "tips to speed up model training",
            "model training speed up on gpus",
        ],
        [
            "make neural network fitting finish faster",
            "shorten the time it takes to fit a deep network",
            "accelerate learning runs by using half precision arithmetic",
            "get experiments to converge in fewer hours",
            "faster fitting of large networks with better hardware utilisation",
            "cut the wall clock time of each learning run",
        ],
    ),
    (
        "detect service outage",
        [
            "detect a service outage with health checks",
            "service outage detection with probes",
            "how to detect an outage of a service",
            "alerting to detect service outage",
        ],
        [
            "notice quickly when an application stops answering requests",
            "find out the moment the api goes down",
            "page the on call engineer when the website is unreachable",
            "know when users cannot reach the product",
            "spot downtime before customers complain",
            "automatic checks that the app is still up and responding",
        ],
    ),
    (
        "encrypt data at rest",
        [
            "encrypt data at rest with kms keys",
            "how to encrypt stored data at rest",
            "data at rest encryption policy",
            "encrypt data at rest on disks",
        ],
        [
            "protect files on disk so stolen drives reveal nothing",
            "scramble stored records with aes so they are unreadable without the key",
            "ciphering the contents of volumes and backups",
            "keep saved information unreadable to anyone without the secret key",
            "making persisted information unreadable if the hardware is stolen",
            "stored bytes are ciphered with a managed key",
        ],
    ),
]


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def labelled_records() -> tuple[list[IngestRecord], list[tuple[str, set[str]]]]:
    """The planted relevant items (content hashes identify them) and each query's relevant set."""
    rng = _rng(11)
    filler_words = Corpus(seed=11).batch(60)
    records, labels = [], []
    for query, lexical, paraphrases in LABELLED:
        relevant: set[str] = set()
        for k, phrase in enumerate(lexical + paraphrases):
            words = filler_words[int(rng.integers(len(filler_words)))].content.rstrip(".").split()
            filler = " ".join(words[:12]).lower()
            record = IngestRecord(
                title=phrase.capitalize(),
                content=f"{phrase.capitalize()}. {filler}.",
                category=CATEGORIES[k % len(CATEGORIES)],
                tags=[TAGS[k % len(TAGS)]],
            )
            records.append(record)
            relevant.add(record.content_hash)
        labels.append((query, relevant))
    return records, labels


async def create_database() -> str:
    name = f"agl_bench_kb_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = PG_ADMIN.rsplit("/", 1)[0]
    return f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1)


async def drop_database(url: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await conn.close()


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def summary(name: str, samples: list[float]) -> dict[str, float]:
    row = {"p50": pct(samples, 50), "p95": pct(samples, 95), "p99": pct(samples, 99), "mean": statistics.fmean(samples)}
    print(
        f"{name:<34} n={len(samples):<5} p50={row['p50']:8.2f} ms  p95={row['p95']:8.2f} ms  p99={row['p99']:8.2f} ms"
    )
    return row


async def ingest(db: Database, batches: Iterable[list[IngestRecord]], *, embed: bool = False) -> tuple[int, float]:
    """Insert every batch (one transaction each); returns (items, seconds spent inserting)."""
    spent, done, reported = 0.0, 0, 0
    for records in batches:
        started = time.perf_counter()
        async with db.session() as session:
            await insert_records(session, records, created_by="bench", embed=embed)
            await session.commit()
        spent += time.perf_counter() - started
        done += len(records)
        if done - reported >= 200_000:
            reported = done
            print(f"  ingested {done:>9,} items ({done / spent:,.0f} items/s)", flush=True)
    return done, spent


async def timed(
    queries: list[SearchQuery], run: Callable[[SearchQuery], Awaitable[object]], rounds: int
) -> list[float]:
    for q in queries:  # warm-up
        await run(q)
    samples = []
    for _ in range(rounds):
        for q in queries:
            t = time.perf_counter()
            await run(q)
            samples.append((time.perf_counter() - t) * 1000)
    return samples


def query_set(texts: list[str], mode: SearchMode) -> list[SearchQuery]:
    queries = [SearchQuery(q=t, mode=mode, limit=10) for t in texts]
    queries += [SearchQuery(q=t, mode=mode, limit=10, category=CATEGORIES[i % 20]) for i, t in enumerate(texts[::4])]
    queries += [SearchQuery(q=t, mode=mode, limit=10, tags=[TAGS[i % 30]]) for i, t in enumerate(texts[2::4])]
    return queries


async def fulltext_phase(args: argparse.Namespace) -> float:
    url = args.fulltext_database or await create_database()
    owned = args.fulltext_database is None
    try:
        db = Database(url)
        if owned:
            print(f"[1] full-text corpus: {args.items:,} items -> {url.rsplit('/', 1)[1]}", flush=True)
            upgrade(url)
            items, seconds = await ingest(db, Corpus(seed=7).batches(args.items, args.batch))
            print(f"ingest: {items:,} items in {seconds:.1f}s = {items / seconds:,.0f} items/s (COPY, indexes live)")
            async with db.session() as session:
                await session.execute(text("ANALYZE knowledge_items"))
                await session.commit()
        else:
            print(f"[1] full-text corpus: reusing {url.rsplit('/', 1)[1]}", flush=True)
            upgrade(url)  # a corpus kept by an older revision of the code
        async with db.session() as session:
            items = int((await session.execute(text("SELECT count(*) FROM knowledge_items"))).scalar_one())
        labelled = fulltext_queries()
        if args.count_matches:
            async with db.session() as session:
                for label, q in labelled:
                    n = (
                        await session.execute(
                            text(
                                "SELECT count(*) FROM knowledge_items WHERE search_vector @@ websearch_to_tsquery('english', :q)"
                            ),
                            {"q": q},
                        )
                    ).scalar_one()
                    print(f"  {label:<9} {q!r:<40} matches {n:>9,} ({100 * n / items:5.2f}%)")
        embedder = get_embedder()

        async def run(q: SearchQuery) -> object:
            async with db.session() as session:
                return await run_search(session, q, embedder, model=embedder.model_name)

        texts = [q for _, q in labelled]
        queries = query_set(texts, SearchMode.fulltext)
        samples = await timed(queries, run, args.rounds)
        row = summary(f"fulltext @ {items:,}", samples)
        label_of = {q: label for label, q in labelled}
        per_class: dict[str, list[float]] = {}
        for i, sample in enumerate(samples):
            query = queries[i % len(queries)]
            per_class.setdefault(label_of[query.q] + (" filtered" if query.category or query.tags else ""), []).append(
                sample
            )
        for name in sorted(per_class):
            summary(f"  {name}", per_class[name])
        await db.dispose()
        return row["p95"]
    finally:
        if owned and not args.keep:
            await drop_database(url)


async def semantic_phase(args: argparse.Namespace) -> None:
    url = await create_database()
    n, distinct = args.semantic_items, min(args.embed_distinct, args.semantic_items)
    print(
        f"[2] semantic corpus: {n:,} items ({distinct:,} distinct texts embedded) -> {url.rsplit('/', 1)[1]}",
        flush=True,
    )
    try:
        upgrade(url)
        db = Database(url)
        planted, labels = labelled_records()
        base = Corpus(seed=21).batch(distinct - len(planted)) + planted
        copies = []
        for c in range(1, -(-n // distinct)):
            for r in base:
                copies.append(
                    IngestRecord(
                        title=r.title, content=r.content, category=CATEGORIES[(c * 7) % 20], tags=[TAGS[(c * 11) % 30]]
                    )
                )
        corpus = (base + copies)[:n]
        await ingest(db, (corpus[i : i + args.batch] for i in range(0, len(corpus), args.batch)))
        embedder = get_embedder()
        texts = [embedding_text(r.title, r.content) for r in base]
        t = time.perf_counter()
        vectors = embedder.encode(texts, batch_size=128)
        seconds = time.perf_counter() - t
        print(
            f"embedding: {len(texts):,} texts in {seconds:.1f}s = {len(texts) / seconds:,.0f} texts/s (MiniLM-L6, CPU)"
        )
        async with db.session() as session:
            rows = (
                await session.execute(
                    text("SELECT id, title, content, category, tags FROM knowledge_items ORDER BY id")
                )
            ).all()
        # Copies have other categories/tags, hence other hashes: map by text.
        by_text = {(r.title, r.content): i for i, r in enumerate(base)}
        ids = [int(r[0]) for r in rows]
        vec_rows = vectors[[by_text[(r[1], r[2])] for r in rows]]
        for start in range(0, len(ids), 20000):
            async with db.session() as session:
                await store_vectors(
                    session, ids[start : start + 20000], vec_rows[start : start + 20000], embedder.model_name
                )
                await session.commit()
        async with db.session() as session:
            backend = await get_backend(session)
            t = time.perf_counter()
            await backend.sync(session, embedder.model_name)  # type: ignore[attr-defined]
            loaded = time.perf_counter() - t
            await backend.wait_ready()  # type: ignore[attr-defined]
            print(
                f"usearch index: {len(ids):,} vectors loaded in {loaded:.1f}s, HNSW built in {time.perf_counter() - t:.1f}s"
            )

        async def run(q: SearchQuery) -> object:
            async with db.session() as session:
                return await run_search(session, q, embedder, model=embedder.model_name)

        texts_q = [q for q, _, _ in LABELLED] + [q for _, q in fulltext_queries()][::2]
        for mode in (SearchMode.fulltext, SearchMode.semantic, SearchMode.hybrid):
            summary(f"{mode.value} @ {n:,}", await timed(query_set(texts_q, mode), run, args.rounds))

        # Copies share a text, so recall counts the first 10 distinct texts of the ranking.
        title_of = {r.content_hash: r.title for r in base}
        for mode in (SearchMode.fulltext, SearchMode.hybrid, SearchMode.semantic):
            recalls = []
            for query, relevant in labels:
                wanted = {title_of[h] for h in relevant}
                result = await run(SearchQuery(q=query, mode=mode, limit=100))
                distinct: list[str] = []
                for hit in result.items:  # type: ignore[attr-defined]
                    if hit.title not in distinct:
                        distinct.append(hit.title)
                recalls.append(len(set(distinct[:10]) & wanted) / len(wanted))
            per_query = ", ".join(f"{r:.1f}" for r in recalls)
            print(f"recall@10 {mode.value:<9} = {statistics.fmean(recalls):.3f}  (per query: {per_query})")
        await db.dispose()
    finally:
        if not args.keep:
            await drop_database(url)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--semantic-items", type=int, default=100_000)
    parser.add_argument("--embed-distinct", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-semantic", action="store_true")
    parser.add_argument("--keep", action="store_true", help="Keep the benchmark databases.")
    parser.add_argument(
        "--fulltext-database", help="Measure this corpus database (built with --keep) instead of building one."
    )
    parser.add_argument(
        "--count-matches", action="store_true", help="Print how many items each full-text query matches."
    )
    args = parser.parse_args()
    started = time.perf_counter()
    if not args.skip_semantic:
        await semantic_phase(args)
    p95 = await fulltext_phase(args)
    print(f"total benchmark time: {time.perf_counter() - started:.0f}s")
    print(f"knowledge_p95_ms_1m={p95:.2f}")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
