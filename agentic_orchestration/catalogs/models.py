"""Pydantic models of the YAML catalogs: agent providers, MCP providers, workflows.

Every model forbids unknown fields so a typo in YAML is an error, not a silent default.
MCP servers are a union by transport (``stdio`` / ``streamable_http``), close to
``crewai.mcp.config`` so converting to CrewAI objects is a field copy.

Secrets are never values here: ``required_env`` and ``api_key_env`` name environment
variables, and ``${VAR}`` references in MCP env/url/headers are expanded only by the process
that starts the server (see ``mcp.resolution``).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

__all__ = [
    "AgentProviderEntry",
    "MCPProviderEntry",
    "ProviderType",
    "RouterRule",
    "StdioServer",
    "StepConfig",
    "StreamableHttpServer",
    "WorkflowConfig",
]

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

ProviderType = Literal["openai", "ollama", "huggingface", "local"]

#: Env var holding the API key when an entry does not name one (``api_key_env``).
DEFAULT_API_KEY_ENV: dict[str, str] = {
    "openai": "OPENAI_API_KEY",
    "huggingface": "HF_TOKEN",
    "ollama": "",
    "local": "",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_env_names(names: list[str]) -> list[str]:
    for name in names:
        if not _ENV_NAME.match(name):
            raise ValueError(f"{name!r} is not an environment variable name")
    return names


class AgentProviderEntry(_Strict):
    """One agent provider: a persona (role/goal/backstory) bound to an LLM endpoint."""

    id: str = Field(pattern=ID_PATTERN, description="Unique id the planner and workflows use.")
    type: ProviderType = Field(description="LLM backend: openai, ollama, huggingface or local.")
    role: str = Field(min_length=1, description="CrewAI agent role.")
    goal: str = Field(min_length=1, description="CrewAI agent goal.")
    backstory: str = Field(min_length=1, description="CrewAI agent backstory.")
    model: str = Field(default="", description="Model name at the endpoint; empty = default.")
    verbose: bool = Field(default=False, description="CrewAI verbose output for this agent.")
    allow_delegation: bool = Field(default=False, description="CrewAI delegation flag.")
    openai_base_url: str = Field(
        default="", description="OpenAI-compatible base URL (type openai); empty = api.openai.com."
    )
    ollama_host: str = Field(
        default="", description="Ollama server URL (type ollama); empty = $OLLAMA_HOST."
    )
    api_key_env: str = Field(
        default="",
        description="Env var holding the API key; empty = OPENAI_API_KEY / HF_TOKEN by type.",
    )
    required_env: list[str] = Field(
        default_factory=list, description="Env vars that must be set for this entry to be used."
    )
    planner_hint: str = Field(
        default="", description="One line telling the planner when to pick it."
    )
    min_vram_gb: float | None = Field(
        default=None, ge=0, description="GPU memory needed; entries above what is found drop out."
    )
    priority: int = Field(
        default=50,
        description="Lower runs first when choosing the planner and the fallback chain.",
    )

    _names = field_validator("required_env")(_check_env_names)

    @field_validator("api_key_env")
    @classmethod
    def _key_env_name(cls, value: str) -> str:
        if value:
            _check_env_names([value])
        return value

    def endpoint(self) -> tuple[str, str, str, str]:
        """Which LLM answers (type, model, URLs): entries sharing it fail together, so the
        fallback chain skips them."""
        return (self.type, self.model, self.openai_base_url, self.ollama_host)

    def key_env(self) -> str:
        """Name of the env var that holds this provider's API key ('' when none is needed)."""
        if self.api_key_env:
            return self.api_key_env
        if self.type == "openai" and self.openai_base_url:
            return ""  # a self-hosted OpenAI-compatible server usually needs no key
        return DEFAULT_API_KEY_ENV[self.type]


class StdioServer(_Strict):
    """An MCP server started as a child process speaking MCP over stdin/stdout."""

    command: str = Field(min_length=1, description="Executable to start (looked up on PATH).")
    args: list[str] = Field(default_factory=list, description="Command-line arguments.")
    env: dict[str, str] = Field(
        default_factory=dict, description="Extra env for the server; values may use ${VAR}."
    )


class StreamableHttpServer(_Strict):
    """An MCP server reached over MCP's streamable HTTP transport."""

    url: str = Field(
        pattern=r"^(https?://|\$\{)", description="Endpoint URL (http/https); may use ${VAR}."
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="HTTP headers; values may use ${VAR} (e.g. API keys)."
    )


class MCPProviderEntry(_Strict):
    """One MCP tool server with exactly one transport block."""

    id: str = Field(pattern=ID_PATTERN, description="Unique id the planner and workflows use.")
    description: str = Field(default="", description="What the tools do, for people.")
    stdio: StdioServer | None = Field(default=None, description="stdio transport block.")
    streamable_http: StreamableHttpServer | None = Field(
        default=None, description="streamable HTTP transport block."
    )
    required_env: list[str] = Field(
        default_factory=list, description="Env vars that must be set for this entry to be used."
    )
    planner_hint: str = Field(
        default="", description="One line telling the planner when to use it."
    )

    _names = field_validator("required_env")(_check_env_names)

    @model_validator(mode="after")
    def _one_transport(self) -> MCPProviderEntry:
        if (self.stdio is None) == (self.streamable_http is None):
            raise ValueError("exactly one of 'stdio' or 'streamable_http' must be given")
        return self

    @property
    def transport(self) -> Literal["stdio", "streamable_http"]:
        return "stdio" if self.stdio is not None else "streamable_http"


class RouterRule(_Strict):
    """When the router should pick a static workflow instead of planning."""

    keywords: list[str] = Field(
        default_factory=list, description="All of these words in the goal select the workflow."
    )
    patterns: list[str] = Field(
        default_factory=list, description="Any of these regexes (case-insensitive) selects it."
    )

    @field_validator("patterns")
    @classmethod
    def _compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"bad regex {pattern!r}: {exc}") from None
        return patterns


class StepConfig(_Strict):
    """One step of a workflow: which agent does what, with which MCP tools."""

    id: str = Field(default="", description="Step id; empty becomes step_<n>.")
    agent_provider: str = Field(pattern=ID_PATTERN, description="Agent provider id.")
    mcp_providers: list[str] = Field(default_factory=list, description="MCP provider ids.")
    description: str = Field(min_length=1, description="Task for the agent; may use {topic}.")
    expected_output: str = Field(
        default="A clear, complete answer.", description="What success looks like."
    )
    depends_on: list[str] | None = Field(
        default=None,
        description="Step ids whose outputs this step needs; absent: the previous step, "
        "[]: none (steps whose dependencies are done may run at once).",
    )

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if value and not re.match(ID_PATTERN, value):
            raise ValueError(f"step id {value!r} must match {ID_PATTERN}")
        return value


class WorkflowConfig(_Strict):
    """A plan: static (from config/workflows) or made by the dynamic planner. Same shape."""

    name: str = Field(min_length=1, description="Workflow name.")
    description: str = Field(default="", description="What the workflow is for.")
    topic: str = Field(default="", description="The user goal; fills {topic} in step text.")
    router: RouterRule | None = Field(default=None, description="Goals this workflow handles.")
    steps: list[StepConfig] = Field(
        min_length=1, description="Steps, run in order (or as their depends_on allow)."
    )
    kb_context: list[str] | None = Field(
        default=None,
        description="Run ids of the past runs whose results the planner was shown (knowledge "
        "base); set by the planner after validation, never part of the model's answer.",
    )
    #: The YAML file a static workflow was read from (None for a plan): errors name it.
    _source_file: str | None = PrivateAttr(default=None)

    @property
    def source_file(self) -> str | None:
        return self._source_file

    @model_validator(mode="after")
    def _number_steps(self) -> WorkflowConfig:
        seen: set[str] = set()
        numbered = []
        for index, step in enumerate(self.steps, start=1):
            if not step.id:
                step = step.model_copy(update={"id": f"step_{index}"})
            if step.id in seen:
                raise ValueError(f"duplicate step id {step.id!r}")
            seen.add(step.id)
            numbered.append(step)
        object.__setattr__(self, "steps", numbered)
        # Unknown ids, self-dependencies and cycles fail the load, naming the step.
        from agentic_orchestration.orchestration.step_graph import (
            check_dependencies,
            dependencies_of,
        )

        check_dependencies(dependencies_of(numbered))
        return self

    def with_topic(self, topic: str) -> WorkflowConfig:
        return self.model_copy(update={"topic": topic})
