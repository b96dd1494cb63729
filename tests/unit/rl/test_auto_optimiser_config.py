"""What an Auto-RL run hands its optimiser as ``ctx.config``: options, budget, the agent's variants."""

from __future__ import annotations

from agentlightning.rl.auto.job import optimiser_config

VARIANTS = [{"name": "terse", "system_prompt": "Be brief."}]


def test_the_agents_declared_variants_reach_the_optimiser() -> None:
    cfg = {"options": {"pulls": 12}, "max_evaluations": 50}
    assert optimiser_config(cfg, {"variants": VARIANTS}) == {"pulls": 12, "variants": VARIANTS, "max_evaluations": 50}


def test_variants_in_the_options_win_over_the_agents() -> None:
    own = [{"name": "cool", "temperature": 0.0}]
    cfg = {"options": {"variants": own}, "max_evaluations": 5}
    assert optimiser_config(cfg, {"variants": VARIANTS})["variants"] == own


def test_no_variants_anywhere_adds_none() -> None:
    out = optimiser_config({"options": {}, "max_evaluations": 7}, {"system_prompt": "x"})
    assert out == {"max_evaluations": 7}
