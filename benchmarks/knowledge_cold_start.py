"""Cold start of the in-process vector index (usearch) on PostgreSQL without pgvector.

Stores ``--vectors`` (default 100,000) random unit vectors as a fresh process would find them,
then measures what a new process experiences: the first sync (streaming the vectors into memory;
searches wait for this), exact search latency while the HNSW graph builds in the background, the
build time, and HNSW search latency afterwards. Random vectors stand in for embeddings: load and
build costs depend on the count and dimension, not on the content.

The last line is ``knowledge_cold_start_exact_p95_ms=<p95 of searches during the build>``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import numpy as np
from knowledge_search import create_database, drop_database, pct
from sqlalchemy import text

from agentlightning.knowledge.embeddings import DIMENSION
from agentlightning.knowledge.ingest.bulk import store_vectors
from agentlightning.knowledge.search.usearch_backend import UsearchBackend
from agentlightning.storage.db import Database
from agentlightning.storage.migrate import upgrade


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vectors", type=int, default=100_000)
    args = parser.parse_args()
    url = await create_database()
    db = Database(url)
    try:
        upgrade(url)
        rng = np.random.default_rng(3)
        async with db.session() as session:
            await session.execute(
                text(
                    "INSERT INTO knowledge_items (id, title, content) SELECT g, 't', 'c' FROM generate_series(1, :n) g"
                ),
                {"n": args.vectors},
            )
            for start in range(0, args.vectors, 20_000):
                ids = list(range(start + 1, min(start + 20_000, args.vectors) + 1))
                vectors = rng.standard_normal((len(ids), DIMENSION)).astype(np.float32)
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                await store_vectors(session, ids, vectors, "m")
            await session.commit()
        backend = UsearchBackend("postgresql")
        queries = rng.standard_normal((50, DIMENSION)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        async with db.session() as session:
            started = time.perf_counter()
            await backend.sync(session, "m")
            print(
                f"first sync (load {args.vectors:,} vectors; searches wait for this): {time.perf_counter() - started:.2f}s"
            )
            exact = []
            while backend.state == "building" and len(exact) < 200:
                t = time.perf_counter()
                await backend.search(session, queries[len(exact) % 50], 20, "m")
                exact.append((time.perf_counter() - t) * 1000)
            await backend.wait_ready()
            print(f"HNSW build in the background: {backend.build_seconds:.1f}s")
            ready = []
            for q in queries:
                t = time.perf_counter()
                await backend.search(session, q, 20, "m")
                ready.append((time.perf_counter() - t) * 1000)
        print(f"exact search during the build: n={len(exact)} p50={pct(exact, 50):.1f} ms p95={pct(exact, 95):.1f} ms")
        print(f"HNSW search once built:       n={len(ready)} p50={pct(ready, 50):.1f} ms p95={pct(ready, 95):.1f} ms")
        print(f"knowledge_cold_start_exact_p95_ms={pct(exact, 95):.2f}")
    finally:
        await db.dispose()
        await drop_database(url)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
