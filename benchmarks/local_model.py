"""The embedded local models: load time, prompt and generation speed, and tool-use success.

For each ``LOCAL_MODEL`` setting (default: all three; the default model first) this measures

- load time: the GGUF (already joined and verified) mapped and a llama.cpp context made;
- prompt tokens/s (a ~200-token prompt, nothing reused from the KV cache) and generation tokens/s
  (64 greedy tokens);
- tool-use success on the fixed prompt set ``benchmarks/data/local_tool_prompts.jsonl``
  (see ``benchmarks/data/README.md`` for where each item comes from):
  * 20 arithmetic questions asked as the starter ``math_agent`` asks them (its system prompt, the
    real ``calculator`` and ``python`` tool definitions, its ``tool_choice``): correct when the first
    reply calls ``calculator`` (or ``python``) and running that call with the real tool gives the
    expected number;
  * 34 function-calling items of BFCL's ``simple_python`` category (one function offered,
    ``tool_choice`` auto): correct when the first reply calls that function with arguments BFCL's
    possible answers accept (each given argument among the allowed values, optional ones may be
    left out, no unknown argument).

Greedy decoding (temperature 0), so the success shares do not depend on the machine; the speeds do
(report them with the machine's load). The last line is ``local_tool_success_pct=<default model>``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from agentlightning.agents.llm.base import ChatMessage, LLMRequest, ToolCall, ToolSpec
from agentlightning.agents.llm.local import LocalLlamaProvider, cpu_count, default_threads
from agentlightning.agents.llm.local_models import DEFAULT_LOCAL_MODEL, MODELS
from agentlightning.agents.templates import TEMPLATES
from agentlightning.agents.tools.base import ToolContext
from agentlightning.agents.tools.registry import default_registry
from agentlightning.settings import Settings

DATA = Path(__file__).resolve().parent / "data" / "local_tool_prompts.jsonl"
SPEED_PROMPT = (
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
    "Summarise the following notes in two sentences. "
    + " ".join(
        f"Note {i}: the shipment {i} left warehouse {i % 7} on day {i % 30} with {i * 3} boxes." for i in range(12)
    )
    + "<|im_end|>\n<|im_start|>assistant\n"
)


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return abs(float(a) - float(b)) <= 1e-6 * max(1.0, abs(float(b)))
    if isinstance(a, str) and isinstance(b, str):
        return a.strip().lower() == b.strip().lower()
    if isinstance(a, str) and isinstance(b, int | float):
        try:
            return _close(float(a), b)
        except ValueError:
            return False
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    return bool(a == b)


def bfcl_correct(call: ToolCall | None, expected: dict[str, Any]) -> bool:
    """BFCL's AST check for one call: the name, every given argument allowed, none missing or unknown."""
    if call is None or call.raw_arguments is not None or call.name != expected["name"]:
        return False
    allowed: dict[str, list[Any]] = expected["arguments"]
    if set(call.arguments) - set(allowed):
        return False
    for name, values in allowed.items():
        if name not in call.arguments:
            if "" not in values:
                return False
            continue
        if not any(_close(call.arguments[name], v) for v in values if v != ""):
            return False
    return True


async def calculator_correct(call: ToolCall | None, expected: float, settings: Settings) -> bool:
    """The call runs, with the real tool, to the expected number."""
    if call is None or call.raw_arguments is not None or call.name not in ("calculator", "python"):
        return False
    ctx = ToolContext(settings=settings)
    outcome = await default_registry().invoke(call.name, call.arguments, ctx, allowed=["calculator", "python"])
    if not outcome.ok:
        return False
    text = outcome.for_model()
    try:
        value = json.loads(text).get("result", {})
        if isinstance(value, dict):
            value = value.get("result", value.get("stdout", ""))
        if isinstance(value, str):
            value = value.strip().splitlines()[-1]
        return _close(float(value), expected)
    except (ValueError, TypeError, AttributeError, IndexError):
        return False


async def run_model(key: str, items: list[dict[str, Any]], settings: Settings, threads: int) -> dict[str, Any]:
    """Load, speed and success share of one model."""
    provider = LocalLlamaProvider(
        model=key, model_dir=settings.local_model_dir, n_ctx=4096, n_threads=threads, max_new_tokens=256
    )
    await asyncio.to_thread(provider.engine)  # join+verify if needed (not timed), load (timed below)
    engine = provider.engine()
    load_s = engine.load_seconds
    gen = await asyncio.to_thread(engine.generate, f"[{key}]" + SPEED_PROMPT, max_tokens=64)
    registry = default_registry()
    math = TEMPLATES["math_agent"].config
    calc_tools = registry.specs(settings, list(math["tools"]))
    ok = {"calculator": 0, "bfcl_simple_python": 0}
    seen = {"calculator": 0, "bfcl_simple_python": 0}
    started = time.perf_counter()
    for item in items:
        kind = item["kind"]
        if kind == "calculator":
            request = LLMRequest(
                messages=[ChatMessage("system", math["system_prompt"]), ChatMessage("user", item["question"])],
                tools=calc_tools,
                temperature=0.0,
                max_tokens=96,
                tool_choice=str(math.get("tool_choice", "auto")),
            )
        else:
            fn = item["function"]
            request = LLMRequest(
                messages=[ChatMessage("user", item["question"])],
                tools=[ToolSpec(fn["name"], fn["description"], fn["parameters"])],
                temperature=0.0,
                max_tokens=128,
            )
        response = await provider.complete(request)
        call = response.tool_calls[0] if response.tool_calls else None
        if kind == "calculator":
            good = await calculator_correct(call, float(item["expected"]), settings)
        else:
            good = bfcl_correct(call, item["expected_call"])
        seen[kind] += 1
        ok[kind] += int(good)
        shown = f"{call.name}({json.dumps(call.arguments)[:80]})" if call else repr(response.content[:60])
        print(f"  {key} {item['id']}: {'ok ' if good else 'BAD'} {shown}", file=sys.stderr, flush=True)
    total = sum(seen.values())
    return {
        "model": key,
        "gguf_mb": round(engine.path.stat().st_size / 1e6),
        "load_s": round(load_s, 2),
        "prompt_tps": round(gen.prompt_tokens / gen.prompt_seconds, 1),
        "gen_tps": round(gen.completion_tokens / gen.generation_seconds, 1),
        "calculator_ok": f"{ok['calculator']}/{seen['calculator']}",
        "bfcl_ok": f"{ok['bfcl_simple_python']}/{seen['bfcl_simple_python']}",
        "success_pct": round(100.0 * sum(ok.values()) / total, 1) if total else 0.0,
        "items_s": round(time.perf_counter() - started, 1),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--models", default=",".join([DEFAULT_LOCAL_MODEL] + sorted(set(MODELS) - {DEFAULT_LOCAL_MODEL}))
    )
    parser.add_argument("--limit", type=int, default=0, help="only the first N items of each kind (0: all)")
    parser.add_argument("--threads", type=int, default=0, help="llama.cpp threads (0: the setting's default)")
    parser.add_argument("--json", default="", help="also write the results to this file")
    parser.add_argument("--speed-only", action="store_true", help="load time and tokens/s only (no prompt set)")
    args = parser.parse_args()
    items = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    if args.speed_only:
        items = []
    elif args.limit:
        kept: dict[str, int] = {}
        items = [
            i
            for i in items
            if kept.setdefault(i["kind"], 0) < args.limit and not kept.update({i["kind"]: kept[i["kind"]] + 1})
        ]
    settings = Settings()
    threads = args.threads or default_threads()
    load = os.getloadavg()[0]
    print(f"{len(items)} items, {cpu_count()} CPUs, {threads} thread(s), load average {load:.1f} at start")
    results = []
    for key in args.models.split(","):
        result = await run_model(key, items, settings, threads)
        results.append(result)
        print(" ".join(f"{k}={v}" for k, v in result.items()), flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    default = next((r for r in results if r["model"] == DEFAULT_LOCAL_MODEL), results[0])
    print(f"local_tool_success_pct={default['success_pct']}")


if __name__ == "__main__":
    asyncio.run(main())
