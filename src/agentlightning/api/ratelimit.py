"""Which quota an HTTP request counts against; the counting is :mod:`agentlightning.auth.gate`.

Quotas use ``limits``' sliding-window counter (Redis storage sharing the cache's connection pool
when configured, in-process otherwise): per user when authenticated (counted in the same Redis
round trip as the revocation check), per client address otherwise, and a stricter per-address
quota on ``/auth/login`` and ``/auth/refresh``. An unreachable store lets requests through.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from agentlightning.auth.gate import gate_for


def client_ip(request: HTTPConnection) -> str:
    """The client's address (the direct peer; put a trusted proxy's header rewriting in front)."""
    return request.client.host if request.client else "unknown"


async def check_anonymous(request: HTTPConnection) -> None:
    """Count one anonymous request of the caller's address (429 over quota)."""
    await gate_for(request.app.state.ctx).check("anonymous", client_ip(request))


async def check_login(request: HTTPConnection) -> None:
    """Count one login or refresh attempt of the caller's address (429 over quota)."""
    await gate_for(request.app.state.ctx).check("login", client_ip(request))
