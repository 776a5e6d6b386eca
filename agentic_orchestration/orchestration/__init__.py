"""Execution: contracts, backends, step hand-off, coordinator, run store, fallback.

Backends are picked by name (``backends.factory``); CLI runs go through
``execution_dispatch.execute_workflow_config_resolved``.
"""
