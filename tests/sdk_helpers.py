"""Helpers of the SDK tests: a platform that hangs, a dead address, and the scripted model."""

from __future__ import annotations

import socket
import threading
from typing import Any

from tests.helpers import free_port


class HangingPlatform:
    """A TCP server that accepts connections, reads the request and never answers (until closed):
    a platform that hangs. ``hit`` is set when the first rollout batch (``POST /api/v2/rollouts``)
    arrives: from then on the recorder's thread is stuck in that request."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self.hit = threading.Event()
        self.release = threading.Event()
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self.release.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            try:
                conn.settimeout(5)
                if conn.recv(65536).startswith(b"POST /api/v2/rollouts"):
                    self.hit.set()
            except OSError:
                pass

    def __enter__(self) -> HangingPlatform:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.release.set()
        for conn in self._conns:
            conn.close()
        self._sock.close()


def dead_url() -> str:
    """An address where nothing listens (connection refused)."""
    return f"http://127.0.0.1:{free_port()}"


def strip_ids(dump: Any) -> Any:
    """A model dump without the fields the scripted server makes unique per response (ids and
    creation times), so two answers to the same request compare equal."""
    if isinstance(dump, dict):
        return {k: strip_ids(v) for k, v in dump.items() if k not in ("id", "created", "run_id")}
    if isinstance(dump, list):
        return [strip_ids(v) for v in dump]
    return dump
