"""Headless Chromium driven over the DevTools protocol: load a page, wait for content, screenshot.

``chromium --screenshot --virtual-time-budget`` fast-forwards virtual time while Streamlit waits on
its WebSocket, so it captures the empty app shell; here the capture waits (with a deadline) until
the page's text holds what the test expects and Streamlit has finished running the script.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect

#: True once Streamlit has no script run in progress (its status widget is gone).
_IDLE = "!document.querySelector('[data-testid=\"stStatusWidget\"]')"


async def _devtools_port(user_dir: Path, process: asyncio.subprocess.Process, deadline: float) -> int:
    port_file = user_dir / "DevToolsActivePort"
    while True:
        if port_file.exists():
            lines = port_file.read_text().splitlines()
            if lines and lines[0].isdigit():
                return int(lines[0])
        assert process.returncode is None, "chromium exited before opening its DevTools port"
        assert time.monotonic() < deadline, "chromium did not open its DevTools port"
        await asyncio.sleep(0.1)


async def capture(
    chromium: str,
    url: str,
    expect_text: str,
    *,
    ready_selector: str = "body",
    width: int = 1400,
    height: int = 1000,
    timeout: float = 180,
) -> tuple[bytes, str]:
    """Load ``url`` in headless Chromium; once its text contains ``expect_text``, an element
    matches ``ready_selector`` (e.g. a drawn chart) and Streamlit is idle, return (PNG
    screenshot, page text)."""
    deadline = time.monotonic() + timeout
    # Chromium's helper processes (zygote, renderers) can still be writing the profile while the
    # directory is removed; a leftover file in /tmp must not fail the test.
    with tempfile.TemporaryDirectory(prefix="agl-chromium-", ignore_cleanup_errors=True) as tmp:
        process = await asyncio.create_subprocess_exec(
            chromium,
            "--headless",
            "--no-sandbox",  # root in CI containers
            "--disable-gpu",
            "--hide-scrollbars",
            f"--window-size={width},{height}",
            "--remote-debugging-port=0",
            f"--user-data-dir={tmp}",
            "about:blank",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so its helpers are stopped with it
        )
        try:
            port = await _devtools_port(Path(tmp), process, deadline)
            async with httpx.AsyncClient(timeout=10) as http:
                targets = (await http.get(f"http://127.0.0.1:{port}/json")).json()
            page = next(t for t in targets if t.get("type") == "page")
            async with connect(page["webSocketDebuggerUrl"], max_size=None) as ws:
                ids = itertools.count(1)

                async def call(method: str, **params: Any) -> dict[str, Any]:
                    message_id = next(ids)
                    await ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
                    while True:
                        reply = json.loads(await ws.recv())
                        if reply.get("id") == message_id:
                            assert "error" not in reply, reply
                            return dict(reply.get("result", {}))

                await call(
                    "Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False
                )
                await call("Page.navigate", url=url)
                text = ""
                while True:
                    result = await call(
                        "Runtime.evaluate",
                        expression=(
                            f"[document.body ? document.body.innerText : '', "
                            f"{_IDLE} && !!document.querySelector({json.dumps(ready_selector)})]"
                        ),
                        returnByValue=True,
                    )
                    text, idle = result.get("result", {}).get("value") or ["", False]
                    if expect_text in text and idle:
                        break
                    assert time.monotonic() < deadline, (
                        f"{expect_text!r} never appeared; the page shows: {text[-1500:]}"
                    )
                    await asyncio.sleep(0.5)
                shot = await call("Page.captureScreenshot", format="png")
                return base64.b64decode(shot["data"]), text
        finally:
            if process.returncode is None:
                process.terminate()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.wait(), timeout=20)
                if process.returncode is None:
                    process.kill()
                    await process.wait()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
