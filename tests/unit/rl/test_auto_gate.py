"""The promotion gate: exact one-sided McNemar test on paired pass/fail of the same held-out tasks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentlightning.rl.auto.gate import decide, mcnemar_exact_greater


def test_exact_p_values() -> None:
    assert mcnemar_exact_greater(0, 0) == 1.0
    assert mcnemar_exact_greater(5, 0) == pytest.approx(1 / 32)
    assert mcnemar_exact_greater(0, 5) == 1.0
    # P(X >= 8 | n = 10, 1/2) = (45 + 10 + 1) / 1024
    assert mcnemar_exact_greater(8, 2) == pytest.approx(56 / 1024)


def test_matches_scipy_binomial_test() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    for b in range(0, 25):
        for c in range(0, 25):
            if b + c == 0:
                continue
            expected = scipy_stats.binomtest(b, b + c, 0.5, alternative="greater").pvalue
            assert mcnemar_exact_greater(b, c) == pytest.approx(expected, rel=1e-9)


def test_a_clear_win_is_promoted_and_a_small_one_is_not() -> None:
    win = decide([0.0] * 10 + [1.0] * 10, [1.0] * 20, alpha=0.05)
    assert win.promote and win.wins == 10 and win.losses == 0 and win.gain_pp == 50.0
    assert win.p_value == pytest.approx(2**-10)
    small = decide([0.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0], alpha=0.05)  # 2 wins: p = 0.25
    assert not small.promote and small.p_value == pytest.approx(0.25)


def test_the_gate_needs_the_same_tasks() -> None:
    with pytest.raises(ValueError):
        decide([1.0, 0.0], [1.0], alpha=0.05)


rewards = st.lists(st.sampled_from([0.0, 0.2, 0.5, 0.8, 1.0]), min_size=0, max_size=60)


@given(
    pairs=st.lists(
        st.tuples(st.sampled_from([0.0, 0.4, 0.5, 1.0]), st.sampled_from([0.0, 0.4, 0.5, 1.0])), max_size=80
    ),
    alpha=st.floats(min_value=0.001, max_value=0.999),
)
def test_a_candidate_that_does_not_pass_more_tasks_is_never_promoted(
    pairs: list[tuple[float, float]], alpha: float
) -> None:
    incumbent = [p[0] for p in pairs]
    candidate = [p[1] for p in pairs]
    decision = decide(incumbent, candidate, alpha=alpha)
    if decision.candidate_passes <= decision.incumbent_passes:
        assert not decision.promote
    if decision.promote:
        assert decision.p_value < alpha and decision.wins > decision.losses
