"""Wrappers that trace existing agents to the platform: OpenAI, LangChain and AutoGen.

Each module imports its framework only when used (``from agentlightning import OpenAIWrapper``
loads nothing of LangChain or AutoGen).
"""
