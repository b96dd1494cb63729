"""Reciprocal rank fusion: merge several rankings of the same items into one.

RRF scores an item ``sum(1 / (k + rank))`` over the rankings it appears in (rank starts at 1). It
needs no score calibration between full-text ranks and cosine similarities, which is why hybrid
search uses it (Cormack, Clarke & Büttcher, SIGIR 2009; ``k = 60`` is their constant).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

DEFAULT_K = 60


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[K]], *, k: int = DEFAULT_K, weights: Sequence[float] | None = None
) -> list[tuple[K, float]]:
    """Fuse ``rankings`` (each best-first, ids unique within one) into ``(id, score)`` best-first.

    ``weights`` scales each ranking's contribution (default 1 each). Ties keep the order in which
    items were first seen, so the result is deterministic.
    """
    if k < 1:
        raise ValueError("k must be >= 1")
    if weights is not None and len(weights) != len(rankings):
        raise ValueError("one weight per ranking")
    scores: dict[K, float] = {}
    for position, ranking in enumerate(rankings):
        weight = 1.0 if weights is None else weights[position]
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    order = {item: i for i, item in enumerate(scores)}
    return sorted(scores.items(), key=lambda pair: (-pair[1], order[pair[0]]))
