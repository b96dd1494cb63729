"""What OpenAIWrapper adds to each chat-completion call, in the caller's thread.

The same request is sent ``ROUNDS`` x ``BLOCK`` times through a plain ``openai.OpenAI`` client and
through the wrapped one, alternating blocks so that drift of the machine hits both alike. Both
clients answer from an in-process HTTP transport (the openai SDK's own HTTP client with a mock
transport returning a fixed completion), so the network's noise does not hide the difference. The
wrapper's recorder delivers to a sink that keeps nothing: what is measured is the caller's cost
(the span snapshot, the rollout bookkeeping and the enqueue; sending happens on the recorder's
thread).

Times are the calling thread's CPU time (``time.thread_time``), which other processes on a busy
machine do not inflate; wall-clock medians are printed too. The last line is the figure: the
median per-call CPU time of the wrapped client minus the plain one's, in microseconds.
"""

from __future__ import annotations

import importlib
import json
import statistics
import time
from typing import Any

import openai

from agentlightning import Client, OpenAIWrapper
from agentlightning.sdk.recorder import Recorder

ROUNDS = 30
BLOCK = 200
MESSAGES = [
    {"role": "system", "content": "You are a concise assistant. " * 20},
    {"role": "user", "content": "Summarise the quarterly report in three bullet points."},
]
COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1,
        "model": "bench-model",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "- one\n- two\n- three"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 120, "completion_tokens": 6, "total_tokens": 126},
    }
).encode()


def _client() -> openai.OpenAI:
    # The HTTP library the installed openai SDK is built on (httpx, or httpx2 in openai 3).
    http = importlib.import_module(openai.DefaultHttpxClient.__mro__[1].__module__.split(".")[0])
    transport = http.MockTransport(
        lambda request: http.Response(200, content=COMPLETION, headers={"content-type": "application/json"})
    )
    return openai.OpenAI(
        api_key="bench", base_url="http://bench.invalid/v1", http_client=openai.DefaultHttpxClient(transport=transport)
    )


def _block(create: Any) -> tuple[float, float]:
    """Per-call (CPU, wall) seconds of one block of calls."""
    cpu, wall = time.thread_time(), time.perf_counter()
    for _ in range(BLOCK):
        create(model="bench-model", messages=MESSAGES)
    return (time.thread_time() - cpu) / BLOCK, (time.perf_counter() - wall) / BLOCK


def main() -> None:
    recorder = Recorder(lambda batch: None, batch_interval=0.05)
    plain = _client()
    wrapped = OpenAIWrapper(_client(), client=Client("http://127.0.0.1:9", recorder=recorder))
    for _ in range(2):  # warm up both
        _block(plain.chat.completions.create)
        _block(wrapped.chat.completions.create)
    plain_s, wrapped_s = [], []
    for _ in range(ROUNDS):
        plain_s.append(_block(plain.chat.completions.create))
        wrapped_s.append(_block(wrapped.chat.completions.create))
    assert recorder.flush(30)
    stats = recorder.stats()

    def median_us(samples: list[tuple[float, float]], i: int) -> float:
        return statistics.median(sample[i] for sample in samples) * 1e6

    print(
        f"per call, CPU: plain {median_us(plain_s, 0):.0f} us, wrapped {median_us(wrapped_s, 0):.0f} us; "
        f"wall: plain {median_us(plain_s, 1):.0f} us, wrapped {median_us(wrapped_s, 1):.0f} us; "
        f"rollouts sent: {stats['sent']}, dropped: {stats['dropped']}"
    )
    print(f"sdk_overhead_us_per_call={median_us(wrapped_s, 0) - median_us(plain_s, 0):.0f}")


if __name__ == "__main__":
    main()
