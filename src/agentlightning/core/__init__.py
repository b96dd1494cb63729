"""Process-wide plumbing shared by the API, workers and the CLI."""
