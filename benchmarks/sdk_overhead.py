"""What OpenAIWrapper adds to each chat-completion call, in the caller's thread.

The same request is sent ``ROUNDS`` x ``BLOCK`` times through a plain ``openai.OpenAI`` client and
through the wrapped one, alternating blocks so that drift of the machine hits both alike, to the
scripted OpenAI-compatible server of the tests (no delay). The wrapper's recorder delivers to a
sink that keeps nothing, so what is measured is the caller's cost: the span snapshot, the rollout
bookkeeping and the enqueue (the sending happens on the recorder's thread).

The last line is the figure: the median per-call time of the wrapped client minus the plain
one's, in microseconds.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import openai  # noqa: E402

from agentlightning import Client, OpenAIWrapper  # noqa: E402
from agentlightning.sdk.recorder import Recorder  # noqa: E402
from tests.fake_llm_server import FakeLLMServer  # noqa: E402

ROUNDS = 20
BLOCK = 25
MESSAGES = [
    {"role": "system", "content": "You are a concise assistant. " * 20},
    {"role": "user", "content": "Summarise the quarterly report in three bullet points."},
]


def _block(create: Any) -> float:
    started = time.perf_counter()
    for _ in range(BLOCK):
        create(model="fake-model", messages=MESSAGES)
    return (time.perf_counter() - started) / BLOCK


def main() -> None:
    recorder = Recorder(lambda batch: None, batch_interval=0.05)
    with FakeLLMServer() as llm:
        plain = openai.OpenAI(base_url=llm.base_url, api_key="bench")
        wrapped = OpenAIWrapper(
            openai.OpenAI(base_url=llm.base_url, api_key="bench"),
            client=Client("http://127.0.0.1:9", recorder=recorder),
        )
        for _ in range(2):  # warm both connections
            _block(plain.chat.completions.create)
            _block(wrapped.chat.completions.create)
        plain_s, wrapped_s = [], []
        for _ in range(ROUNDS):
            plain_s.append(_block(plain.chat.completions.create))
            wrapped_s.append(_block(wrapped.chat.completions.create))
    assert recorder.flush(30)
    stats = recorder.stats()
    plain_us = statistics.median(plain_s) * 1e6
    wrapped_us = statistics.median(wrapped_s) * 1e6
    print(
        f"plain call median: {plain_us:.0f} us; wrapped: {wrapped_us:.0f} us; "
        f"spans sent: {stats['sent']}, dropped: {stats['dropped']}"
    )
    print(f"sdk_overhead_us_per_call={wrapped_us - plain_us:.0f}")


if __name__ == "__main__":
    main()
