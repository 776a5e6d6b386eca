"""Agentic Orchestration: a goal becomes a plan of CrewAI agent steps, run on a pluggable backend.

The package is laid out by concern:

- ``catalogs``: YAML catalogs of agent providers, MCP servers and static workflows.
- ``providers``: turning a catalog entry into a CrewAI LLM, and the embedded llama.cpp model.
- ``planning``: the dynamic planner (goal -> WorkflowConfig) and the router.
- ``orchestration``: contracts, execution backends, step hand-off, fallback.
- ``mcp``: MCP servers for steps (catalog entry -> CrewAI server), CrewAI's MCP hotfix.
- ``output`` / ``sessions``: what is kept after a run.
- ``cli``: the command line; ``testing``: test doubles shipped with the package.

Heavy imports (crewai, llama_cpp) happen where they are used, never at package import.
"""

__version__ = "0.1.0"
