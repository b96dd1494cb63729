"""The promotion gate: does a candidate beat the incumbent on the same held-out tasks?

Both are run on the same held-out tasks (never shown to the optimiser); each task is a pass
(reward >= 0.5, the platform's definition of success) or a fail for each. Only the discordant
pairs carry information: ``b`` tasks the candidate passes and the incumbent fails, ``c`` the
reverse. Under the null hypothesis (the candidate is no better) each discordant pair goes
either way with probability 1/2, so the exact one-sided McNemar p-value is the binomial tail

    p = P(X >= b),  X ~ Binomial(b + c, 1/2)

computed exactly with integers. The candidate is promoted only when ``p < alpha`` (and so
``b > c``: a worse or equal candidate is never promoted, whatever ``alpha``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from math import comb
from typing import Any

__all__ = ["PASS_THRESHOLD", "GateDecision", "decide", "mcnemar_exact_greater"]

#: A reward at or above this is a pass (the rollouts contract's "success").
PASS_THRESHOLD = 0.5


def mcnemar_exact_greater(b: int, c: int) -> float:
    """One-sided exact McNemar p-value that the candidate wins more discordant pairs (``b``) than it loses (``c``)."""
    if b < 0 or c < 0:
        raise ValueError("counts must be non-negative")
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(comb(n, k) for k in range(b, n + 1))
    return float(Fraction(tail, 2**n))


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict with everything needed to audit it."""

    promote: bool
    p_value: float
    alpha: float
    n: int
    incumbent_passes: int
    candidate_passes: int
    #: Candidate passes where the incumbent fails (``b``) and the reverse (``c``).
    wins: int
    losses: int
    incumbent_score: float
    candidate_score: float
    test: str = "mcnemar-exact-one-sided"

    @property
    def gain_pp(self) -> float:
        """Held-out success of the candidate minus the incumbent's, in percentage points."""
        return round(100.0 * (self.candidate_passes - self.incumbent_passes) / self.n, 3) if self.n else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON form (stored with the experiment and the promotion)."""
        return {**asdict(self), "gain_pp": self.gain_pp}


def decide(incumbent: Sequence[float], candidate: Sequence[float], *, alpha: float) -> GateDecision:
    """Compare paired rewards of the same tasks; promote only on a significant win."""
    if len(incumbent) != len(candidate):
        raise ValueError("the gate needs the same tasks for both")
    inc = [r >= PASS_THRESHOLD for r in incumbent]
    cand = [r >= PASS_THRESHOLD for r in candidate]
    wins = sum(1 for i, c in zip(inc, cand) if c and not i)
    losses = sum(1 for i, c in zip(inc, cand) if i and not c)
    p_value = mcnemar_exact_greater(wins, losses)
    n = len(inc)
    return GateDecision(
        promote=bool(n) and wins > losses and p_value < alpha,
        p_value=p_value,
        alpha=alpha,
        n=n,
        incumbent_passes=sum(inc),
        candidate_passes=sum(cand),
        wins=wins,
        losses=losses,
        incumbent_score=sum(incumbent) / n if n else 0.0,
        candidate_score=sum(candidate) / n if n else 0.0,
    )
