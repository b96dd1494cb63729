"""``agentlightning dashboard`` as a user starts it, rendered by headless Chromium against a live API.

The dashboard starts logged in from a token file (an API key), Chromium renders the first page
(Agents) and is driven over the DevTools protocol (see ``cdp.py``): the page's text must show the
Agents page's figures and chart, and its screenshot real content (many colours, not a blank page). The screenshot is kept as ``docs/images/dashboard.png`` when
``AGL_UPDATE_SCREENSHOT=1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageStat

from tests.helpers import free_port
from tests.integration.dashboard.cdp import capture
from tests.integration.dashboard.conftest import Seeded

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
REPO = Path(__file__).resolve().parents[3]
KEPT_SCREENSHOT = REPO / "docs" / "images" / "dashboard.png"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None, reason="chromium is not installed (scripts/install-system-deps.sh test installs it)"
    ),
]


@contextlib.asynccontextmanager
async def dashboard_process(api_url: str, token_file: Path) -> AsyncIterator[str]:
    """``agentlightning dashboard`` on a free port, until it answers its health check; yields its URL."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agentlightning.cli",
        "dashboard",
        "--port",
        str(port),
        "--api-url",
        api_url,
        "--token-file",
        str(token_file),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        async with httpx.AsyncClient(timeout=5) as http:
            while True:
                assert process.returncode is None, (await process.stderr.read()).decode() if process.stderr else ""
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{url}/_stcore/health")).status_code == 200:
                        break
                assert time.monotonic() < deadline, "the dashboard did not start within 120 s"
                await asyncio.sleep(0.25)
        yield url
    finally:
        if process.returncode is None:
            os.killpg(process.pid, 15)
            try:
                await asyncio.wait_for(process.wait(), timeout=20)
            except TimeoutError:
                os.killpg(process.pid, 9)
                await process.wait()


async def test_dashboard_renders_in_headless_chromium(
    seeded: Seeded, client: httpx.AsyncClient, login: Callable[[str], Awaitable[dict[str, str]]], tmp_path: Path
) -> None:
    admin = await login("admin")
    key = await client.post("/auth/api-keys", json={"name": "dashboard screen"}, headers=admin)
    assert key.status_code == 201, key.text
    token_file = tmp_path / "token"
    token_file.write_text(key.json()["data"]["key"])
    async with dashboard_process(seeded.url, token_file) as url:
        # Tables are drawn on a canvas (not in the page's text): wait for the chart's heading.
        png, text = await capture(
            CHROMIUM or "chromium", url, "Reward trend", ready_selector=".vega-embed canvas, .vega-embed svg"
        )
    assert "Busy workers" in text and "Pending tasks" in text
    screenshot = tmp_path / "dashboard.png"
    screenshot.write_bytes(png)
    assert screenshot.exists(), "chromium wrote no screenshot"
    with Image.open(screenshot) as image:
        rgb = image.convert("RGB")
        assert rgb.size == (1400, 1000)
        colours = rgb.getcolors(maxcolors=1 << 20) or []
        spread = ImageStat.Stat(rgb.convert("L")).stddev[0]
    assert len(colours) > 64, f"only {len(colours)} colours: a blank page?"
    assert spread > 5, f"grey-level spread {spread:.1f}: a blank page?"
    if os.environ.get("AGL_UPDATE_SCREENSHOT") == "1":
        KEPT_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(screenshot, KEPT_SCREENSHOT)
