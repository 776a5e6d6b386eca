"""Execution: contracts, backends, step hand-off, fallback. Backends are picked by name."""
