"""The audit log: the one writer of ``audit_log`` (who changed what, with which request, when)."""
