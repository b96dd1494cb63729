"""The child-process half of ``grpo``: TRL's GRPOTrainer with a LoRA adapter on a local model.

Runs in a spawned process (:mod:`agentlightning.rl.optimisers.grpo` starts it), never in the
server's event loop.  Everything heavy (torch, transformers, TRL, PEFT, datasets) is imported here
only.  Progress goes back through a reporter (a queue), a stop request is polled between steps by
a ``TrainerCallback``.  The rewards are the tasks' verifiers applied to each sampled completion.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from agentlightning.agents.llm.hf_models import prepare_hf_model
from agentlightning.agents.llm.local import default_threads
from agentlightning.agents.llm.transformers_provider import ADAPTER_META, pick_device
from agentlightning.rollouts.verifiers import verify

#: the metrics of a TRL log line that are streamed to the experiment (TRL name -> our name)
REPORTED = {
    "reward": "reward",
    "reward_std": "reward_std",
    "loss": "loss",
    "grad_norm": "grad_norm",
    "learning_rate": "learning_rate",
    "entropy": "entropy",
    "completions/mean_length": "completion_length",
    "step_time": "step_seconds",
}


class Reporter(Protocol):
    """How the child talks to its parent: progress out, stop request in."""

    def report(self, update: dict[str, Any]) -> None: ...

    def stop_requested(self) -> bool: ...


@dataclass
class GrpoJob:
    """Everything the child needs (plain data: it is pickled to a spawned process)."""

    base_model: str
    model_dir: str | None
    workdir: str
    system_prompt: str
    #: ``{"id", "prompt", "verifier", "context"}`` each
    tasks: list[dict[str, Any]]
    #: a validated :class:`~agentlightning.rl.optimisers.grpo.GrpoConfig` as a dict
    config: dict[str, Any] = field(default_factory=dict)


def user_message(prompt: str, context: Mapping[str, Any] | None) -> str:
    """The user turn as the agent runtime writes it (task, then its context as JSON)."""
    if context:
        return prompt + "\n\nContext:\n" + json.dumps(dict(context), ensure_ascii=False, default=str)
    return prompt


def task_messages(system_prompt: str, task: Mapping[str, Any]) -> list[dict[str, str]]:
    """The chat a task becomes: the agent's system prompt and the task as the user's message."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.append({"role": "user", "content": user_message(str(task["prompt"]), task.get("context"))})
    return messages


def completion_text(completion: Any) -> str:
    """The text of one TRL completion (a message list for chat prompts, else a string)."""
    if isinstance(completion, list):
        return "".join(str(m.get("content") or "") for m in completion if isinstance(m, dict))
    return str(completion)


def verifier_reward(completions: Sequence[Any], verifier: Sequence[str], **_: Any) -> list[float | None]:
    """TRL reward function: each completion scored in [0, 1] by its task's verifier spec (JSON)."""
    return [float(verify(json.loads(spec), completion_text(c)).score) for c, spec in zip(completions, verifier)]


def greedy_reward(model: Any, tokenizer: Any, job: GrpoJob, max_new_tokens: int, device: str) -> float:
    """Mean verifier score of greedy answers to the job's tasks (the before/after measurement)."""
    import torch

    scores: list[float] = []
    model.eval()
    with torch.inference_mode():
        for task in job.tasks:
            prompt = tokenizer.apply_chat_template(
                task_messages(job.system_prompt, task), add_generation_prompt=True, tokenize=False
            )
            inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(device)
            out = model.generate(
                **inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
            text = tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
            scores.append(float(verify(task["verifier"], text).score))
    return sum(scores) / len(scores) if scores else 0.0


def run_grpo(job: GrpoJob, reporter: Reporter) -> dict[str, Any]:
    """Train, save the adapter under ``job.workdir/adapter``, return what happened (blocking)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    cfg = job.config
    started = time.perf_counter()
    device = pick_device(str(cfg.get("device", "auto")))
    if device == "cpu":
        # Every core but one by default: torch's threads spin-wait for each other, and on a busy
        # 2-core machine two threads ran a step 10x slower than one (65 s against 6.4 s).
        torch.set_num_threads(int(cfg.get("threads") or 0) or default_threads())
    torch.manual_seed(int(cfg.get("seed", 0)))
    base_dir = prepare_hf_model(job.base_model, job.model_dir)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model: Any = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=dtype, local_files_only=True)
    model = model.to(device)
    tokenizer = AutoTokenizer.from_pretrained(str(base_dir), local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    max_len = int(cfg.get("max_completion_length", 64))
    measure = bool(cfg.get("measure", True))
    reward_before = greedy_reward(model, tokenizer, job, max_len, device) if measure else None
    reporter.report({"type": "measured", "phase": "before", "reward": reward_before})

    workdir = Path(job.workdir)
    adapter_dir = workdir / "adapter"
    num_generations = int(cfg.get("num_generations", 4))
    args = GRPOConfig(
        output_dir=str(workdir / "trainer"),
        max_steps=int(cfg.get("max_steps", 50)),
        per_device_train_batch_size=num_generations * int(cfg.get("prompts_per_step", 1)),
        num_generations=num_generations,
        max_completion_length=max_len,
        learning_rate=float(cfg.get("learning_rate", 5e-5)),
        beta=float(cfg.get("beta", 0.0)),
        temperature=float(cfg.get("temperature", 1.0)),
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=device == "cpu",
        bf16=device == "cuda",
        gradient_checkpointing=False,
        dataloader_num_workers=0,
        seed=int(cfg.get("seed", 0)),
    )
    dataset = Dataset.from_list(
        [{"prompt": task_messages(job.system_prompt, t), "verifier": json.dumps(t["verifier"])} for t in job.tasks]
    )
    lora = LoraConfig(
        r=int(cfg.get("lora_r", 16)),
        lora_alpha=int(cfg.get("lora_alpha", 32)),
        lora_dropout=float(cfg.get("lora_dropout", 0.0)),
        target_modules=list(cfg.get("target_modules") or ["q_proj", "k_proj", "v_proj", "o_proj"]),
        task_type="CAUSAL_LM",
    )

    class Progress(TrainerCallback):
        """Streams each log line's metrics to the parent and stops between steps when asked."""

        stopped = False

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
            metrics = {
                ours: float(logs[theirs])
                for theirs, ours in REPORTED.items()
                if logs and isinstance(logs.get(theirs), int | float)
            }
            if metrics:
                reporter.report({"type": "progress", "step": int(state.global_step), "metrics": metrics})

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if reporter.stop_requested():
                Progress.stopped = True
                control.should_training_stop = True

    trainer = GRPOTrainer(
        model=model,
        reward_funcs=verifier_reward,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora,
        callbacks=[Progress()],
    )
    trainer.remove_callback(PrinterCallback)
    steps, train_seconds = 0, 0.0
    if reporter.stop_requested():
        Progress.stopped = True
    else:
        train_started = time.perf_counter()
        output = trainer.train()
        train_seconds = time.perf_counter() - train_started
        steps = int(output.global_step)
    trained: Any = trainer.model
    adapter_dir.mkdir(parents=True, exist_ok=True)
    trained.save_pretrained(str(adapter_dir))
    (adapter_dir / ADAPTER_META).write_text(
        json.dumps({"base_model": job.base_model, "steps": steps, "stopped": Progress.stopped, "algorithm": "grpo"})
    )
    reward_after = None
    if measure and not Progress.stopped:
        reward_after = greedy_reward(trained, tokenizer, job, max_len, device)
        reporter.report({"type": "measured", "phase": "after", "reward": reward_after})
    return {
        "adapter": str(adapter_dir),
        "steps": steps,
        "stopped": Progress.stopped,
        "device": device,
        "reward_before": reward_before,
        "reward_after": reward_after,
        "train_seconds": train_seconds,
        "steps_per_second": steps / train_seconds if train_seconds > 0 else 0.0,
        "total_seconds": time.perf_counter() - started,
    }
