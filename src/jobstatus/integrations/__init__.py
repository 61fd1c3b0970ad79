"""Queue integrations, one module per queue, each behind its own extra."""
