"""Learning quality through the platform: PPO and DQN on CartPole-v1, SAC on Pendulum-v1.

Each experiment is created, validated, queued and trained by the experiment manager in a child
process, exactly as ``POST /api/v2/rl/experiments`` does; the final evaluation is the platform's
own (20 deterministic episodes). Hyperparameters are RL Zoo's tuned ones. Targets: PPO >= 475
within 100k steps; SAC >= -200 within 20k steps; DQN is reported (RL Zoo budget: 50k steps).

Last line: ``rl_quality ppo_cartpole=<r> dqn_cartpole=<r> sac_pendulum=<r> pass=<bool>``.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _rl_platform import platform, run  # noqa: E402

EVAL = {"n_episodes": 20, "deterministic": True}

EXPERIMENTS = [
    {
        "label": "ppo_cartpole",
        "target": 475.0,
        "body": {
            "algorithm": "ppo",
            "environment": "CartPole-v1",
            "total_timesteps": 100_000,
            "n_envs": 8,
            "seed": 1,
            "hyperparameters": {
                "n_steps": 32,
                "batch_size": 256,
                "gae_lambda": 0.8,
                "gamma": 0.98,
                "n_epochs": 20,
                "ent_coef": 0.0,
                "learning_rate": "lin_0.001",
                "clip_range": "lin_0.2",
            },
        },
    },
    {
        "label": "dqn_cartpole",
        "target": None,
        "body": {
            "algorithm": "dqn",
            "environment": "CartPole-v1",
            "total_timesteps": 50_000,
            "seed": 1,
            "hyperparameters": {
                "learning_rate": 2.3e-3,
                "batch_size": 64,
                "buffer_size": 100_000,
                "learning_starts": 1000,
                "gamma": 0.99,
                "target_update_interval": 10,
                "train_freq": 256,
                "gradient_steps": 128,
                "exploration_fraction": 0.16,
                "exploration_final_eps": 0.04,
                "policy_kwargs": {"net_arch": [256, 256]},
            },
        },
    },
    {
        "label": "sac_pendulum",
        "target": -200.0,
        "body": {
            "algorithm": "sac",
            "environment": "Pendulum-v1",
            "total_timesteps": 20_000,
            "seed": 1,
            "hyperparameters": {"learning_rate": 1e-3},
        },
    },
]


async def main() -> int:
    results: dict[str, float] = {}
    passed = True
    async with platform(max_concurrent=1) as (service, _manager):
        for spec in EXPERIMENTS:
            body = {"name": f"quality-{spec['label']}", "evaluation": EVAL, "checkpoint_freq": 20_000, **spec["body"]}
            (exp,), wall = await run(service, [body])
            final = exp["metrics"].get("final_evaluation") or {}
            reward = final.get("mean_reward", float("nan"))
            results[spec["label"]] = reward
            ok = exp["status"] == "completed" and (spec["target"] is None or reward >= spec["target"])
            passed &= ok
            target = "" if spec["target"] is None else f" target>={spec['target']:.0f} {'PASS' if ok else 'FAIL'}"
            print(
                f"{spec['label']}: status={exp['status']} steps={exp['metrics'].get('timesteps')} "
                f"eval_mean={reward:.1f} eval_std={final.get('std_reward', float('nan')):.1f} "
                f"episodes={final.get('n_episodes')} wall={wall:.1f}s fps={exp['metrics'].get('fps', 0):.0f}{target}"
                + (f" error={exp['error']}" if exp["error"] else ""),
                flush=True,
            )
    summary = " ".join(f"{k}={v:.1f}" for k, v in results.items())
    print(f"rl_quality {summary} pass={str(passed).lower()}")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
