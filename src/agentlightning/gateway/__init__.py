"""The OpenAI-compatible gateway behind ``/v1``: provider registry and routing (``registry``),
forwarding (``upstream``, ``local``), per-key policy and budgets (``policy``), promoted agent
resources (``resources``), background recording into rollouts (``recorder``), and the call itself
(``service``). The routes are ``agentlightning.api.routes.gateway``; see ``docs/gateway.md``."""
