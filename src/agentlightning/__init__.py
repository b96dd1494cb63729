"""Agent Lightning: serve LLM agents over HTTP and improve them with reinforcement learning.

The top-level package is the lightweight SDK; the server lives in sub-packages installed with
the ``[server]`` extra.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
