"""Time to the first MCP tool call of a step, per transport and backend; and the worst wait
on a server that never answers.

"First tool call" = from the step's start to the moment the call reaches the server: the
server is started (stdio) or connected to (HTTP), initialized and asked for its tools (CrewAI
then closes that discovery session), the LLM (the scripted server, instant) asks for the
tool, and CrewAI opens a fresh session (stdio: a fresh server process) to call it. Servers:

- stdio: mcp-server-fetch (PyPI, the shipped ``fetch_url``); "reaches the server" is when
  our local web server sees its first request (robots.txt, sent as the call starts);
- streamable HTTP: the MCP SDK test server (``testing.mcp_servers``) in this process, which
  records each call's time.

In-process: after one warm-up step (the first kickoff in a process costs about 1 s more,
which is not MCP's). Subprocess: warm workers (the default), the MCP steps after a warm-up
step, timed from the coordinator's ``(progress) ... started`` line. Target: under 1.5 s
for mcp-server-fetch. Prints figures, asserts nothing.

Run: .venv/bin/python benchmarks/bench_mcp_first_tool_call.py
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agentic_orchestration.testing import (  # noqa: E402
    ScriptedLLMServer,
    StreamableHTTPMCPServer,
    ToolCallReply,
    stdio_server_command,
)
from agentic_orchestration.testing.fake_llm import message_text  # noqa: E402

ROUNDS = 3
HANG_TIMEOUT = 2.0
FETCH = Path(sys.executable).parent / "mcp-server-fetch"


class _Site:
    """A one-page web server that notes when each request arrives."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        (root / "page.html").write_text("<html><body><p>kettle</p></body></html>")
        self.hits: list[float] = []
        hits = self.hits

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                hits.append(time.time())

        self.server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/page.html"


def _call_then_echo(suffix: str, arguments: dict[str, Any]) -> Any:
    def reply(request: dict[str, Any]) -> Any:
        results = [m for m in request.get("messages", []) if m.get("role") == "tool"]
        if results:
            return "TOOL SAID: " + message_text(results[-1])[:200]
        names = [t["function"]["name"] for t in request.get("tools") or []]
        return ToolCallReply(next(n for n in names if n.endswith(suffix)), arguments)
    return reply


def _catalog(root: Path, llm_url: str, http_url: str) -> Path:
    for sub in ("agent_providers", "mcp_providers", "workflows"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "agent_providers" / "a.yaml").write_text(textwrap.dedent(f"""\
        - {{id: bench_agent, type: openai, model: fake-model, openai_base_url: "{llm_url}",
           role: Tester, goal: Use tools., backstory: Quick.}}
        """))
    cmd, args = stdio_server_command("hang")
    (root / "mcp_providers" / "m.yaml").write_text(textwrap.dedent(f"""\
        - {{id: fetch_url, stdio: {{command: "{FETCH}", args: [--allow-private-ips]}}}}
        - {{id: sdk_http, streamable_http: {{url: "{http_url}"}}}}
        - {{id: hang_srv, stdio: {{command: "{cmd}", args: {json.dumps(args)}}}}}
        """))
    return root


def _flow(mcp_id: str, steps: int) -> list[dict[str, Any]]:
    flow = [{"id": "warmup", "agent_provider": "bench_agent", "description": "WARMUP say hi"}]
    flow += [{"id": f"call_{i}", "agent_provider": "bench_agent", "mcp_providers": [mcp_id],
              "description": f"CALL-{mcp_id} use the tool"} for i in range(steps)]
    return flow


def _stats(values: list[float]) -> str:
    if not values:
        return "n/a"
    return (f"median {statistics.median(values):.2f} s, min {min(values):.2f}, "
            f"max {max(values):.2f} (n={len(values)})")


def bench_inprocess(mcp_id: str, hits: Any) -> list[float]:
    from agentic_orchestration.catalogs import WorkflowConfig, load_catalog
    from agentic_orchestration.orchestration.backends.base import RunOptions
    from agentic_orchestration.orchestration.backends.crewai import CrewAIExecutionBackend

    catalog = load_catalog()
    backend = CrewAIExecutionBackend(live_progress=False)
    options = RunOptions(emit_progress_lines=False, emit_stdout_summary=False)
    warm = WorkflowConfig(name="w", steps=_flow(mcp_id, 0))
    assert backend.execute_config(warm, options=options, catalog=catalog).ok
    one = WorkflowConfig(name="b", steps=_flow(mcp_id, 1)[1:])
    waits = []
    for _ in range(ROUNDS):
        seen = len(hits)
        began = time.time()
        result = backend.execute_config(one, options=RunOptions(emit_progress_lines=False,
                                                                emit_stdout_summary=False),
                                        catalog=catalog)
        assert result.ok, result.error
        waits.append(hits[seen] - began)
    return waits


def bench_subprocess(mcp_id: str, hits: Any, tmp: Path) -> list[float]:
    flow = tmp / f"flow-{mcp_id}.yaml"
    flow.write_text(json.dumps({"steps": _flow(mcp_id, ROUNDS)}))
    env = {**os.environ, "AGENTIC_EXECUTION_BACKEND": "subprocess",
           "AGENTIC_SUBPROCESS_WORKERS": "1", "AGENTIC_SUBPROCESS_WARM": "1"}
    seen = len(hits)
    proc = subprocess.Popen([sys.executable, str(REPO / "main.py"), "--workflow", str(flow),
                             "tea"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, env=env)
    starts = []
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("(progress) step") and " call_" in line and "started" in line:
            starts.append(time.time())
    proc.wait()
    calls = hits[seen:]
    if proc.returncode != 0 or len(calls) < len(starts):
        print(f"  subprocess run failed (exit {proc.returncode})")
        return []
    # One tool call per step, in order; fetch may make two requests per call (robots.txt).
    firsts = [min(t for t in calls if t >= start) for start in starts]
    return [first - start for first, start in zip(firsts, starts, strict=True)]


def bench_hang() -> tuple[list[float], list[float]]:
    """Seconds until a step whose server never answers has failed: in-process, subprocess."""
    from agentic_orchestration.catalogs import WorkflowConfig, load_catalog
    from agentic_orchestration.orchestration.backends.base import RunOptions
    from agentic_orchestration.orchestration.backends.crewai import CrewAIExecutionBackend

    os.environ["AGENTIC_MCP_CONNECT_TIMEOUT_SECONDS"] = str(HANG_TIMEOUT)
    config = WorkflowConfig(name="h", steps=_flow("hang_srv", 1)[1:])
    inprocess = []
    for _ in range(ROUNDS):
        result = CrewAIExecutionBackend(live_progress=False).execute_config(
            config, options=RunOptions(emit_progress_lines=False, emit_stdout_summary=False,
                                       log_terminal_execution_failure=False),
            catalog=load_catalog())
        assert not result.ok
        inprocess.append(result.step_results[-1].timing.duration_seconds)
    flow = Path(tempfile.mkdtemp()) / "hang.yaml"
    flow.write_text(json.dumps({"steps": _flow("hang_srv", 1)[1:]}))
    env = {**os.environ, "AGENTIC_EXECUTION_BACKEND": "subprocess",
           "AGENTIC_SUBPROCESS_WORKERS": "1"}
    proc = subprocess.run([sys.executable, str(REPO / "main.py"), "--workflow", str(flow),
                           "tea"], capture_output=True, text=True, env=env, check=False)
    subproc = []
    for line in proc.stdout.splitlines():  # "(progress) step 1/1 x failed: ..." has no time
        if "failed:" in line:
            store = Path(os.environ["AGENTIC_RUN_STORE_PATH"])
            for path in store.glob("*/call_0/result.json"):
                subproc.append(json.loads(path.read_text())["timing"]["duration_seconds"])
    return inprocess, subproc


def main() -> None:
    from agentic_orchestration.log import configure_logging

    configure_logging()  # CrewAI warns once per step about token counts: not a figure
    tmp = Path(tempfile.mkdtemp(prefix="bench-mcp-"))
    os.environ.update(HOME=str(tmp / "home"), AGENTIC_PROGRESS="1",
                      AGENTIC_SESSIONS_PATH=str(tmp / "sessions"),
                      AGENTIC_ARTIFACTS_PATH=str(tmp / "artifacts"),
                      AGENTIC_RUN_STORE_PATH=str(tmp / "store"),
                      CREWAI_DISABLE_TELEMETRY="true", OTEL_SDK_DISABLED="true",
                      CREWAI_DISABLE_VERSION_CHECK="true")
    site = _Site(tmp / "site")
    with ScriptedLLMServer(default="Final Answer: hi") as llm, StreamableHTTPMCPServer() as sdk:
        os.environ["AGENTIC_CONFIG_DIR"] = str(_catalog(tmp / "config", llm.base_url, sdk.url))
        llm.add_rule("CALL-fetch_url", _call_then_echo("_fetch", {"url": site.url}))
        llm.add_rule("CALL-sdk_http", _call_then_echo("_add", {"a": 1, "b": 2}))
        print(f"time to first tool call (target < 1.5 s for mcp-server-fetch), {ROUNDS} rounds")
        for backend in ("inprocess", "subprocess"):
            for label, mcp_id, hits in (("stdio mcp-server-fetch", "fetch_url", site.hits),
                                        ("streamable HTTP (SDK)", "sdk_http", None)):
                source = hits if hits is not None else _LiveTimes(sdk.calls)
                if backend == "inprocess":
                    waits = bench_inprocess(mcp_id, source)
                else:
                    waits = bench_subprocess(mcp_id, source, tmp)
                print(f"  {backend:<10} {label:<24} {_stats(waits)}")
        inprocess, subproc = bench_hang()
        print(f"server that never answers (AGENTIC_MCP_CONNECT_TIMEOUT_SECONDS="
              f"{HANG_TIMEOUT:g}): worst step wait in-process {max(inprocess):.2f} s "
              f"(n={len(inprocess)}), subprocess worker "
              f"{max(subproc) if subproc else float('nan'):.2f} s; configured {HANG_TIMEOUT:g} s")


class _LiveTimes:
    """``hits``-like view over the SDK server's call records (times appended as calls come)."""

    def __init__(self, calls: list[dict[str, Any]]) -> None:
        self.calls = calls

    def __len__(self) -> int:
        return len(self.calls)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [c["time"] for c in self.calls[index]]
        return self.calls[index]["time"]


if __name__ == "__main__":
    main()
