"""Authentication (passwords, JWTs, refresh tokens, API keys) and role-based authorisation."""
