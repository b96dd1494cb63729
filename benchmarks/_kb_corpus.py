"""The synthetic corpus and query set of ``knowledge_search.py``, built to behave like real text.

Why: a full-text benchmark is only as honest as its term statistics. Natural language is Zipfian
(the r-th most frequent word occurs with probability about ``1 / r``), so most words are rare and
only a handful are everywhere; the handful is mostly function words, which the ``english`` text
search configuration drops. A corpus drawn from ~150 words makes every query term match ~10% of
the rows, which no real knowledge base does.

Design (all deterministic from a seed):

* **Vocabulary**: the English stop words take the top ranks (as in real text), then
  :data:`VOCABULARY_SIZE` generated word forms (syllable strings, shortest at the most frequent
  ranks, after Zipf's law of abbreviation). Tokens are drawn with ``P(rank r) ~ 1 / r**ZIPF_S``.
* **Topics**: every item belongs to one of ten topics (:data:`TOPICS`); about
  :data:`TOPIC_SHARE` of its body tokens are that topic's words (themselves Zipf-distributed, so
  "postgres" is far more frequent than "btree" within the database topic), and with probability
  :data:`PHRASE_PROBABILITY` it contains one of the topic's labelled phrases ("connection pool",
  "cache hit", ...). Topic words are therefore the corpus's *common* content terms: the most
  frequent ones match 5-15% of all items, like "error" or "server" in an operations wiki.
* **Items**: a 4-9 word title (one or two topic words plus vocabulary words) and a 30-90 word body.
  Category (one of 20) and 1-3 tags (of 30) are drawn uniformly.

:func:`fulltext_queries` is the fixed query set: rare, medium and common single terms (picked by
vocabulary rank, so their document frequency is known in advance), common topic words, multi-term
queries mixing them, phrases, ``-exclusions`` and ``or``; each query is labelled with its class.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from agentlightning.knowledge.ingest.parsers import IngestRecord
from agentlightning.knowledge.search.query import STOPWORDS

VOCABULARY_SIZE = 40_000
ZIPF_S = 1.05
TOPIC_SHARE = 0.12
PHRASE_PROBABILITY = 0.15
CATEGORIES = [f"cat{i:02d}" for i in range(20)]
TAGS = [f"tag{i:02d}" for i in range(30)]

TOPICS: dict[str, tuple[list[str], list[str]]] = {
    "database": (
        "postgres index query vacuum replication schema transaction table join planner wal btree".split(),
        ["connection pool", "query planner", "read replica"],
    ),
    "cache": (
        "redis cache eviction ttl memory key cluster sentinel persistence hit latency lru".split(),
        ["cache hit", "eviction policy", "memory limit"],
    ),
    "network": (
        "tcp socket latency bandwidth packet router dns tls handshake proxy firewall load".split(),
        ["tls handshake", "load balancer", "packet loss"],
    ),
    "security": (
        "token jwt secret encryption certificate audit role permission password rotation vault".split(),
        ["secret rotation", "audit log", "access token"],
    ),
    "ml": (
        "model training gradient dataset embedding inference gpu batch epoch tensor checkpoint".split(),
        ["mixed precision", "learning rate", "gradient checkpoint"],
    ),
    "agents": (
        "agent tool prompt reward policy trace episode memory planner workflow feedback".split(),
        ["tool call", "reward model", "prompt template"],
    ),
    "deploy": (
        "docker kubernetes pod container helm replica rollout image registry node ingress".split(),
        ["rolling update", "container image", "health check"],
    ),
    "monitoring": (
        "metric prometheus grafana alert dashboard scrape histogram uptime incident pager".split(),
        ["alert rule", "error budget", "on call"],
    ),
    "storage": (
        "disk volume snapshot backup restore bucket object archive raid filesystem quota".split(),
        ["object storage", "point in time", "disk full"],
    ),
    "billing": (
        "invoice payment customer subscription refund plan currency tax receipt ledger".split(),
        ["refund request", "payment method", "tax rate"],
    ),
}

_ONSETS = "b c d f g h k l m n p r s t v z br dr gr kl pr st tr".split()
_NUCLEI = "a e i o u ai ea ou".split()


def vocabulary(seed: int = 1) -> list[str]:
    """Stop words first, then generated word forms, shortest first (rank order)."""
    rng = np.random.default_rng(seed)
    reserved = set(STOPWORDS) | {w for words, _ in TOPICS.values() for w in words}
    forms: set[str] = set()
    while len(forms) < VOCABULARY_SIZE:
        syllables = int(rng.integers(2, 5))
        word = "".join(
            _ONSETS[rng.integers(len(_ONSETS))] + _NUCLEI[rng.integers(len(_NUCLEI))] for _ in range(syllables)
        )
        if rng.random() < 0.3:
            word += _ONSETS[rng.integers(len(_ONSETS))]
        if word not in reserved:
            forms.add(word)
    generated = sorted(forms, key=lambda w: (len(w), w))
    order = rng.permutation(len(generated))  # shuffle within equal lengths, keep short-first overall
    generated = sorted((generated[i] for i in order), key=len)
    return sorted(STOPWORDS) + generated


def _zipf_cdf(size: int, s: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, size + 1, dtype=np.float64) ** s
    cdf = np.cumsum(weights)
    return cdf / cdf[-1]


@dataclass
class Corpus:
    """Draws items in batches; the same seed always yields the same items."""

    seed: int = 7

    def __post_init__(self) -> None:
        self.words = np.array(vocabulary(), dtype=object)
        self.first_content_rank = len(STOPWORDS)
        self._cdf = _zipf_cdf(len(self.words), ZIPF_S)
        self._topic_words = [np.array(words, dtype=object) for words, _ in TOPICS.values()]
        self._topic_cdfs = [_zipf_cdf(len(words), 1.0) for words, _ in TOPICS.values()]
        self._phrases = [phrases for _, phrases in TOPICS.values()]
        self._rng = np.random.default_rng(self.seed)

    def _tokens(self, count: int, topic: int, content_only: bool = False) -> list[str]:
        rng = self._rng
        low = self._cdf[self.first_content_rank - 1] if content_only else 0.0
        ranks = np.searchsorted(self._cdf, rng.uniform(low, 1.0, count))
        tokens = self.words[np.minimum(ranks, len(self.words) - 1)]
        topical = rng.random(count) < TOPIC_SHARE
        if topical.any():
            picks = np.searchsorted(self._topic_cdfs[topic], rng.random(int(topical.sum())))
            tokens[topical] = self._topic_words[topic][picks]
        return tokens.tolist()

    def batch(self, size: int) -> list[IngestRecord]:
        """The next ``size`` items."""
        rng = self._rng
        records = []
        for _ in range(size):
            topic = int(rng.integers(len(TOPICS)))
            body = self._tokens(int(rng.integers(30, 91)), topic)
            if rng.random() < PHRASE_PROBABILITY:
                phrases = self._phrases[topic]
                body.insert(int(rng.integers(len(body))), phrases[int(rng.integers(len(phrases)))])
            title_words = self._tokens(int(rng.integers(3, 8)), topic, content_only=True)
            title_words.insert(0, str(self._topic_words[topic][np.searchsorted(self._topic_cdfs[topic], rng.random())]))
            records.append(
                IngestRecord(
                    title=" ".join(title_words).capitalize(),
                    content=" ".join(body).capitalize() + ".",
                    category=CATEGORIES[int(rng.integers(len(CATEGORIES)))],
                    tags=[TAGS[int(t)] for t in rng.integers(0, len(TAGS), int(rng.integers(1, 4)))],
                )
            )
        return records

    def batches(self, total: int, size: int) -> Iterator[list[IngestRecord]]:
        """``total`` items, ``size`` at a time (never all in memory)."""
        for start in range(0, total, size):
            yield self.batch(min(size, total - start))


def fulltext_queries(words: list[str] | None = None) -> list[tuple[str, str]]:
    """The fixed ``(class, query)`` set; generated terms are named by vocabulary rank."""
    words = words if words is not None else vocabulary()
    base = len(STOPWORDS)

    def w(rank: int) -> str:  # the generated word at a content rank (1 = most frequent)
        return words[base + rank - 1]

    return [
        ("rare", w(20_000)),
        ("rare", w(30_000)),
        ("rare", f"{w(12_000)} {w(2_000)}"),
        ("rare", w(38_000)),
        ("medium", w(1_000)),
        ("medium", w(3_000)),
        ("medium", f"{w(400)} {w(800)}"),
        ("medium", w(600)),
        ("common", w(1)),
        ("common", w(5)),
        ("common", w(30)),
        ("common", "latency"),
        ("common", "postgres"),
        ("common", "memory"),
        ("common", "planner"),
        ("common", f"index {w(2)}"),
        ("multi", "postgres vacuum"),
        ("multi", "redis eviction ttl"),
        ("multi", "jwt token rotation"),
        ("multi", f"kubernetes {w(50)}"),
        ("multi", "gradient checkpoint tensor"),
        ("phrase", '"connection pool"'),
        ("phrase", '"cache hit"'),
        ("phrase", '"tls handshake" proxy'),
        ("phrase", f'"{w(3)} {w(4)}"'),
        ("exclusion", "replication -wal"),
        ("exclusion", "docker -kubernetes image"),
        ("exclusion", f"latency -{w(1)}"),
        ("exclusion", f'{w(10)} -"cache hit"'),
        ("or", "backup or snapshot"),
        ("or", f"{w(5_000)} or {w(6_000)}"),
        ("or", "refund or invoice or receipt"),
    ]
