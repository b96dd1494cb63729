"""The HTTP API: app factory, envelope, errors, middleware and routes."""
