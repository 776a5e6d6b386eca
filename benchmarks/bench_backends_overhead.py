"""Per-step orchestration overhead: in-process vs cold subprocess vs warm subprocess.

``warm-fork`` forks each step's child when it is launched (no spares, no priming: the warm
launcher before issue 11); ``warm`` is the default (spares forked and primed ahead). For the
breakdown of a warm step and Ray side by side, see ``bench_vs_ray.py``.

One run, a 5-step plan, the scripted LLM server (``agentic_orchestration.testing``), so the
only thing measured is orchestration: overhead = wall time - time spent inside the LLM
server. Each mode runs as its own coordinator process (so its peak memory is its own); the
fake server lives in this process and counts its busy time.

Target: warm subprocess overhead at most 150 ms per step more than in-process.
For scale: Ray's synchronous task round trip ~1 ms, Argo's per-step gap ~10 s, an uncached
``import crewai`` 4-6 s.

Run: .venv/bin/python benchmarks/bench_backends_overhead.py
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

STEPS = 5
ROUNDS = 2  # the first round of each mode also pays first-kickoff costs; both are printed


def _coordinator(mode: str, config_dir: str, store: str) -> None:
    """Child: run the plan ROUNDS times on one backend, print JSON timings."""
    os.environ["AGENTIC_CONFIG_DIR"] = config_dir
    os.environ["AGENTIC_RUN_STORE_PATH"] = store
    os.environ["AGENTIC_PROGRESS"] = "0"
    from agentic_orchestration import settings
    from agentic_orchestration.log import configure_logging

    configure_logging()
    settings.quiet_crewai_network()
    from agentic_orchestration.catalogs import WorkflowConfig, load_catalog
    from agentic_orchestration.orchestration.backends.base import RunOptions

    catalog = load_catalog()
    config = WorkflowConfig(name="bench", topic="tea", steps=[
        {"agent_provider": "fake_writer", "description": f"STEP{i} write about {{topic}}"}
        for i in range(STEPS)])
    started = time.perf_counter()
    launcher = None
    if mode == "inprocess":
        from agentic_orchestration.orchestration.backends.crewai import CrewAIExecutionBackend

        backend = CrewAIExecutionBackend()
    else:
        from agentic_orchestration.orchestration.backends.subprocess import (
            SubprocessExecutionBackend,
        )
        from agentic_orchestration.orchestration.backends.subprocess_runner import ColdLauncher
        from agentic_orchestration.orchestration.backends.warm_launcher import WarmLauncher

        if mode.startswith("warm"):
            options = {"spares": 0, "prime": False} if mode == "warm-fork" else {}
            launcher = WarmLauncher(env=dict(os.environ), **options)
            launcher.wait_ready()  # in real use this overlaps with planning
            time.sleep(2)  # as does the spares' priming
        else:
            launcher = ColdLauncher(env=dict(os.environ))
        backend = SubprocessExecutionBackend(launcher=launcher)
    setup = time.perf_counter() - started
    rounds = []
    for _ in range(ROUNDS):
        print("ROUND", flush=True)
        sys.stdin.readline()  # parent resets its busy counter
        began = time.perf_counter()
        result = backend.execute_config(config, options=RunOptions(emit_progress_lines=False),
                                        catalog=catalog)
        rounds.append(time.perf_counter() - began)
        assert result.ok, result.error
    if launcher is not None:
        launcher.close()
    print("RESULT " + json.dumps({
        "setup": setup, "rounds": rounds,
        "self_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "children_maxrss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }), flush=True)


def _run_mode(mode: str, server, config_dir: str, store: str) -> dict:
    proc = subprocess.Popen([sys.executable, __file__, "--child", mode, config_dir, store],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdin is not None and proc.stdout is not None
    busy = []
    before = 0.0
    for line in proc.stdout:
        if line.startswith("ROUND"):
            if before or busy or server.busy_seconds:
                busy.append(server.busy_seconds - before)
            before = server.busy_seconds
            proc.stdin.write("\n")
            proc.stdin.flush()
        elif line.startswith("RESULT"):
            busy.append(server.busy_seconds - before)
            data = json.loads(line.split(" ", 1)[1])
            break
    proc.wait()
    data["busy"] = busy[-ROUNDS:]
    return data


def main() -> None:
    from agentic_orchestration.testing import ScriptedLLMServer
    from agentic_orchestration.testing.catalog import write_writer_catalog

    with tempfile.TemporaryDirectory() as tmp, ScriptedLLMServer(
        default="Final Answer: a short paragraph about tea.") as server:
        config_dir = write_writer_catalog(Path(tmp) / "config", server.base_url)
        results = {}
        for mode in ("inprocess", "cold", "warm-fork", "warm"):
            results[mode] = _run_mode(mode, server, str(config_dir), str(Path(tmp) / "store"))

    print(f"{STEPS}-step plan, scripted LLM server; overhead = wall - time inside the server")
    print(f"{'mode':<10} {'setup s':>8} {'round':>6} {'wall s':>8} {'server s':>9} "
          f"{'overhead ms/step':>17}")
    per_step = {}
    for mode, data in results.items():
        for i, (wall, busy) in enumerate(zip(data["rounds"], data["busy"], strict=True)):
            overhead = (wall - busy) / STEPS * 1000
            per_step.setdefault(mode, []).append(overhead)
            print(f"{mode:<10} {data['setup']:>8.2f} {i + 1:>6} {wall:>8.2f} {busy:>9.3f} "
                  f"{overhead:>17.1f}")
    steady = {mode: values[-1] for mode, values in per_step.items()}
    print("\nsteady state (last round):")
    for mode in ("cold", "warm-fork", "warm"):
        print(f"  {mode} / inprocess overhead ratio: {steady[mode] / steady['inprocess']:.1f}x; "
              f"{mode} - inprocess: {steady[mode] - steady['inprocess']:+.0f} ms/step")
    print(f"  cold / warm ratio: {steady['cold'] / steady['warm']:.1f}x")
    print(f"  target: warm - inprocess <= 150 ms/step -> "
          f"{'met' if steady['warm'] - steady['inprocess'] <= 150 else 'NOT met'}")
    print("\npeak memory (RSS):")
    for mode, data in results.items():
        worker = ("runs in the coordinator" if mode == "inprocess"
                  else f"largest worker {data['children_maxrss_mb']:.0f} MB")
        print(f"  {mode:<10} coordinator {data['self_maxrss_mb']:.0f} MB; {worker}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _coordinator(*sys.argv[2:5])
    else:
        main()
