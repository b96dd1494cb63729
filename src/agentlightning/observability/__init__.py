"""Metrics and system measurements."""
