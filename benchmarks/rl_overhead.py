"""Platform overhead of RL training: the same PPO CartPole-v1 run through the platform and as a
plain Stable-Baselines3 script, then two experiments at once, then the same on a local Ray.

- plain: ``python -c <script>`` in a fresh interpreter (imports, build, learn, 10-episode evaluation,
  save), timed from process start to exit;
- platform: ``ExperimentService.create`` (validation dry run, database) -> queue -> child process ->
  the same learn with the streaming / checkpoint callbacks -> the same evaluation -> ``completed``,
  timed from the create call until the manager records the end.

Steps per second = total_timesteps / wall. Last line: ``rl_overhead_ratio=<platform / plain>``.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _rl_platform import platform, run  # noqa: E402
from rl_quality import EXPERIMENTS  # noqa: E402

PPO = next(e["body"] for e in EXPERIMENTS if e["label"] == "ppo_cartpole")
STEPS = PPO["total_timesteps"]
EVAL_EPISODES = 10

PLAIN = f"""
import json, os, tempfile, time
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.utils import LinearSchedule
torch.set_num_threads(1)
hp = json.loads({json.dumps(json.dumps(PPO["hyperparameters"]))})
for key in ("learning_rate", "clip_range"):
    hp[key] = LinearSchedule(float(hp[key].split("_")[1]), 0.0, 1.0)
t0 = time.perf_counter()
env = make_vec_env("CartPole-v1", n_envs={PPO["n_envs"]}, seed={PPO["seed"]})
model = PPO("MlpPolicy", env, seed={PPO["seed"]}, device="cpu", verbose=0, **hp)
model.learn({STEPS})
learn_s = time.perf_counter() - t0
mean, std = evaluate_policy(model, make_vec_env("CartPole-v1", n_envs=1, seed=0), n_eval_episodes={EVAL_EPISODES})
model.save(os.path.join(tempfile.mkdtemp(), "model.zip"))
print(json.dumps({{"learn_s": learn_s, "mean_reward": float(mean)}}))
"""


def plain_run() -> tuple[float, dict]:
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", PLAIN], check=True, capture_output=True, text=True)
    wall = time.perf_counter() - started
    return wall, json.loads(out.stdout.strip().splitlines()[-1])


def body(name: str, seed: int, backend: str = "subprocess") -> dict:
    return {
        **PPO,
        "name": name,
        "seed": seed,
        "backend": backend,
        "checkpoint_freq": 20_000,
        "evaluation": {"n_episodes": EVAL_EPISODES},
    }


async def platform_runs(label: str, backend: str, **overrides: object) -> tuple[float, float]:
    """(single-run wall, two-at-once wall) on ``backend``."""
    async with platform(max_concurrent=2, **overrides) as (service, _manager):
        (one,), single = await run(service, [body(f"{backend}-single", 1, backend)])
        two, double = await run(service, [body(f"{backend}-a", 2, backend), body(f"{backend}-b", 3, backend)])
    for exp in (one, *two):
        assert exp["status"] == "completed", exp["error"]
    print(
        f"{label} single: wall={single:.1f}s steps/s={STEPS / single:.0f} in-run fps={one['metrics']['fps']:.0f} "
        f"eval={one['metrics']['final_evaluation']['mean_reward']:.1f}",
        flush=True,
    )
    print(
        f"{label} two at once: wall={double:.1f}s aggregate steps/s={2 * STEPS / double:.0f} "
        f"speed-up vs one={2 * single / double:.2f}x",
        flush=True,
    )
    return single, double


async def main() -> None:
    plain_wall, plain = plain_run()
    print(
        f"plain SB3 script: wall={plain_wall:.1f}s (learn {plain['learn_s']:.1f}s) steps/s={STEPS / plain_wall:.0f} "
        f"eval={plain['mean_reward']:.1f}",
        flush=True,
    )
    single, _ = await platform_runs("platform subprocess", "subprocess")

    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        await platform_runs("platform ray(local, 2 cpus)", "ray")
    finally:
        ray.shutdown()
    print(f"rl_overhead_ratio={(STEPS / single) / (STEPS / plain_wall):.3f}")


if __name__ == "__main__":
    asyncio.run(main())
