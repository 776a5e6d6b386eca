"""Per-step overhead of every way to run a step, side by side with Ray, in one run.

A plan of STEPS one-task steps against the scripted LLM server (instant replies); overhead =
wall time - time inside the server, per step, median over the steady-state rounds (the first
round of each mode pays first-kickoff and worker-start costs and is shown apart). Each mode
is its own coordinator process:

- ``inprocess``: one CrewAI crew in the coordinator (the floor);
- ``warm fork``: the warm launcher forking a child when the step is launched (pre-fork off:
  the behaviour before issue 11); ``warm spares``: spares forked ahead but not primed;
  ``warm prefork``: spares forked and primed ahead (the default);
- ``cold``: a fresh ``main.py --execute-step`` per step;
- ``ray reused`` / ``ray max_calls=1``: the same coordinator and worker code, the step run as
  a Ray 2.60 task (``execute_step_main`` inside the task) in a reused worker, or in a new
  worker process per task (isolation like ours). Ray runs from its own venv
  (``RAY_VENV``, created on first use: ``pip install ray==2.60.0`` plus a ``.pth`` naming this
  checkout and its ``.venv``; ``_ray_modes``); it is never a dependency of the project.

For the warm modes the steps' phases are stamped (``_warm_child.mark`` through a tracing
target that wraps the worker's functions; ``time.monotonic`` is one clock for every process)
and the breakdown of one step's critical path is printed. CPU per step: the coordinator and
every process it started (the warm zygote with the steps and spares it reaped, warm-ups
included; cold workers), which is what bounds back-to-back steps on a small machine.
Memory: coordinator, zygote, spares (PSS: pages shared with the zygote counted once) and
step children, next to Ray's processes.

Run: ``.venv/bin/python benchmarks/bench_vs_ray.py [--rounds 6] [--repeat 3] [--skip-ray]``.
Prints; asserts nothing. The Ray half is in ``_ray_modes``, the report in
``_vs_ray_report``. The machine is shared: the load average is printed with each mode,
and ``--repeat`` runs the modes again, interleaved, pooling their steady rounds (medians).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _ray_modes import cpu_seconds, descendants, ensure_ray_venv, memory_of, ray_launcher
from _vs_ray_report import BEFORE, configure, kind_of, merge, report

REPO = Path(__file__).resolve().parent.parent
STEPS = 5
QUIET = {"CREWAI_DISABLE_TELEMETRY": "true", "OTEL_SDK_DISABLED": "true",
         "CREWAI_DISABLE_VERSION_CHECK": "true", "RAY_USAGE_STATS_ENABLED": "0",
         "AGENTIC_PROGRESS": "0"}
#: mode -> (launcher, WarmLauncher keyword arguments)
MODES = {
    "inprocess": ("inprocess", {}),
    "warm fork": ("warm", {"spares": 0, "prime": False}),
    "warm spares": ("warm", {"prime": False}),
    "warm prefork": ("warm", {}),
    "cold": ("cold", {}),
    "ray reused": ("ray", {"max_calls": 0}),
    "ray max_calls=1": ("ray", {"max_calls": 1}),
}
SLOW = {"cold", "ray max_calls=1"}  # seconds per step: two rounds are enough
configure(MODES, STEPS)


# -- inside a warm step child ---------------------------------------------------------------

_TRACED = False


def traced_execute_step(spec_path: str, *, run_id: str, step_id: str) -> int:
    """The warm children's target here: ``execute_step_main`` with its phases stamped."""
    global _TRACED
    from agentic_orchestration.orchestration import execute_step
    from agentic_orchestration.orchestration.backends._warm_child import mark

    if not _TRACED:  # in the child (after priming): wrap the real functions, once
        from agentic_orchestration.orchestration import runner
        from agentic_orchestration.orchestration.backends.crewai import CrewAIExecutionBackend
        from agentic_orchestration.orchestration.run_store import FileSystemRunStore

        def stamped(owner, attr, before, after):
            real = getattr(owner, attr)

            def wrapper(*args, **kwargs):
                if before:
                    mark(before)
                try:
                    return real(*args, **kwargs)
                finally:
                    mark(after)
            setattr(owner, attr, wrapper)

        stamped(execute_step, "load_step_spec", "", "spec_loaded")
        stamped(runner, "build_workflow", "", "built")
        stamped(CrewAIExecutionBackend, "execute_built", "kickoff_start", "kickoff_done")
        stamped(FileSystemRunStore, "write_result", "", "result_written")
        _TRACED = True
    import resource

    from agentic_orchestration.orchestration.backends._warm_child import MARKS

    began = resource.getrusage(resource.RUSAGE_SELF)
    try:
        return execute_step.execute_step_main(spec_path, run_id=run_id, step_id=step_id)
    finally:  # not stamps: the step's CPU (all threads) and page faults, sent with them
        done = resource.getrusage(resource.RUSAGE_SELF)
        MARKS["cpu_ms"] = (done.ru_utime + done.ru_stime - began.ru_utime
                           - began.ru_stime) * 1000
        MARKS["page_faults"] = done.ru_minflt - began.ru_minflt


# -- one mode's coordinator -----------------------------------------------------------------

def _coordinator(mode: str, config_dir: str, store: str, rounds: int) -> None:
    """Child: run the plan ``rounds`` times on one mode; print RESULT json."""
    os.environ.update(QUIET, AGENTIC_CONFIG_DIR=config_dir, AGENTIC_RUN_STORE_PATH=store)
    from agentic_orchestration import settings
    from agentic_orchestration.log import configure_logging

    configure_logging()
    settings.quiet_crewai_network()
    from agentic_orchestration.catalogs import WorkflowConfig, load_catalog
    from agentic_orchestration.orchestration.backends.base import RunOptions
    from agentic_orchestration.orchestration.run_store import FileSystemRunStore

    kind, options = MODES[mode]
    catalog = load_catalog()
    config = WorkflowConfig(name="bench", topic="tea", steps=[
        {"agent_provider": "fake_writer", "description": f"STEP{i} write about {{topic}}"}
        for i in range(STEPS)])
    handles, attempts = [], []
    launcher = None
    if kind == "inprocess":
        from agentic_orchestration.orchestration.backends.crewai import CrewAIExecutionBackend

        backend = CrewAIExecutionBackend()
    else:
        from agentic_orchestration.orchestration.backends.launcher import StepLauncher
        from agentic_orchestration.orchestration.backends.subprocess import (
            SubprocessExecutionBackend,
        )
        from agentic_orchestration.orchestration.backends.subprocess_runner import ColdLauncher
        from agentic_orchestration.orchestration.backends.warm_launcher import WarmLauncher

        if kind == "warm":
            inner = WarmLauncher(env=dict(os.environ), target=f"{Path(__file__).stem}:"
                                 "traced_execute_step", **options)
            inner.env["PYTHONPATH"] = str(Path(__file__).parent)
            inner.wait_ready()  # in real use this overlaps with planning
            time.sleep(3)  # and so do the spares' first priming
        elif kind == "cold":
            inner = ColdLauncher(env=dict(os.environ))
        else:
            inner = ray_launcher(options["max_calls"], QUIET)

        class Recording(StepLauncher):
            name = inner.name

            def launch(self, spec, *, spec_path, log_path):
                handles.append(inner.launch(spec, spec_path=spec_path, log_path=log_path))
                return handles[-1]

        real_spec, real_result = FileSystemRunStore.write_spec, FileSystemRunStore.write_result

        def write_spec(self, spec):
            attempts.append({"start": time.monotonic()})
            return real_spec(self, spec)

        def write_result(self, result, **kwargs):
            path = real_result(self, result, **kwargs)
            attempts[-1]["end"] = time.monotonic()
            return path

        FileSystemRunStore.write_spec, FileSystemRunStore.write_result = write_spec, write_result
        launcher = inner
        backend = SubprocessExecutionBackend(launcher=Recording())
    walls, cpus, load = [], [], os.getloadavg()[0]
    zygote = getattr(launcher, "zygote_pid", None)
    for _ in range(rounds):
        print("ROUND", flush=True)
        sys.stdin.readline()  # the parent notes the server's busy time
        began, cpu = time.perf_counter(), cpu_seconds(zygote)
        result = backend.execute_config(config, options=RunOptions(emit_progress_lines=False),
                                        catalog=catalog)
        walls.append(time.perf_counter() - began)
        cpus.append(cpu_seconds(zygote) - cpu)
        assert result.ok, result.error
    memory = {"coordinator": memory_of(os.getpid())}
    for pid, name in descendants(os.getpid()):
        role = "zygote" if pid == zygote else "spare" if kind == "warm" else name
        memory[f"{role} {pid}"] = memory_of(pid)
    import resource

    report = {"walls": walls, "cpus": cpus, "memory": memory, "load": [load, os.getloadavg()[0]],
              "children_maxrss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
              "step_maxrss": [h.maxrss_kb / 1024 for h in handles
                              if getattr(h, "maxrss_kb", None)],
              "marks": [{**a, **getattr(h, "marks", {})}
                        for a, h in zip(attempts, handles, strict=False)]}
    if launcher is not None and hasattr(launcher, "close"):
        launcher.close()
    print("RESULT " + json.dumps(report), flush=True)
    if kind == "ray":
        import ray

        ray.shutdown()


def _run_mode(mode: str, python: str, server, config_dir: str, store: str, rounds: int, *,
              before: str = "") -> dict:
    """One mode's coordinator; a ``(before)`` mode runs ``--before``'s own copy of this
    benchmark on that checkout's code (the same child protocol)."""
    repo = Path(before) if mode.endswith(BEFORE) else REPO
    script = repo / "benchmarks" / Path(__file__).name
    proc = subprocess.Popen([python, str(script), "--child", mode.removesuffix(BEFORE),
                             config_dir, store, str(rounds)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, **QUIET, "PYTHONPATH": str(repo)})
    assert proc.stdin is not None and proc.stdout is not None
    busy, before = [], None
    for line in proc.stdout:
        if line.startswith("ROUND"):
            if before is not None:
                busy.append(server.busy_seconds - before)
            before = server.busy_seconds
            proc.stdin.write("\n")
            proc.stdin.flush()
        elif line.startswith("RESULT"):
            busy.append(server.busy_seconds - (before or 0.0))
            data = json.loads(line.split(" ", 1)[1])
            break
    else:
        raise RuntimeError(f"{mode}: coordinator ended without a result")
    proc.wait()
    data["busy"] = busy
    data["overhead"] = [(w - b) / STEPS * 1000 for w, b in zip(data["walls"], busy, strict=True)]
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6, help="rounds of fast modes (>= 2)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run every mode this many times, interleaved (a fresh coordinator "
                             "each time); figures pool the steady rounds of all runs")
    parser.add_argument("--before", default="",
                        help="a checkout of an earlier commit (git worktree add DIR COMMIT): "
                             "its inprocess and warm prefork run too, as '(before)' modes, "
                             "interleaved with this checkout's")
    parser.add_argument("--skip-ray", action="store_true", help="no Ray modes")
    parser.add_argument("--modes", default="", help="comma-separated subset of modes")
    parser.add_argument("--llm-ms", type=float, default=0.0,
                        help="the scripted LLM answers after this long (a fast real model); "
                             "it is inside the server's time, so subtracted like the rest")
    parser.add_argument("--store-dir", default="",
                        help="parent folder of the run store (default: the temp dir; "
                             "/dev/shm shows the cost of the store's fsyncs)")
    parser.add_argument("--json", default="",
                        help="also write every mode's raw figures (per-step marks) here")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from agentic_orchestration.testing import ScriptedLLMServer
    from agentic_orchestration.testing.catalog import write_writer_catalog

    modes = [m for m in MODES if not args.modes or m in args.modes.split(",")]
    modes = [m for m in modes if not (args.skip_ray and MODES[m][0] == "ray")]
    if "inprocess" not in modes:
        modes.insert(0, "inprocess")
    if args.before:
        modes[1:1] = ["inprocess" + BEFORE, "warm prefork" + BEFORE]
    ray_python = ensure_ray_venv() if any(kind_of(m) == "ray" for m in modes) else None
    print(f"load average at start: {os.getloadavg()} on {os.cpu_count()} CPUs "
          "(others' builds share this machine)", flush=True)
    def answer(request: dict) -> str:
        time.sleep(args.llm_ms / 1000)
        return "Final Answer: a short paragraph about tea."

    where = args.store_dir or "the temp dir"
    print(f"LLM answers after {args.llm_ms:g} ms; run store under {where}")
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory(
            dir=args.store_dir or None) as store_root, ScriptedLLMServer(default=answer) as server:
        os.environ.update(HOME=f"{tmp}/home", XDG_DATA_HOME=f"{tmp}/home/share",
                          XDG_CACHE_HOME=f"{tmp}/home/cache")
        config_dir = write_writer_catalog(Path(tmp) / "config", server.base_url)
        runs: dict[str, list[dict]] = {mode: [] for mode in modes}
        for repeat in range(max(args.repeat, 1)):  # interleaved: a load spike hits every mode
            for mode in modes:
                if repeat and mode in SLOW:
                    continue  # seconds per step: one run says enough
                python = str(ray_python) if kind_of(mode) == "ray" else sys.executable
                rounds = 2 if mode in SLOW else max(args.rounds, 2)
                print(f"running {mode} ({rounds} rounds, run {repeat + 1}, load "
                      f"{os.getloadavg()[0]:.1f})...", file=sys.stderr, flush=True)
                runs[mode].append(_run_mode(mode, python, server, str(config_dir),
                                            str(Path(store_root) / "store"), rounds,
                                            before=args.before))
        results = {mode: merge(found) for mode, found in runs.items()}
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=1))
    report(results, args.llm_ms)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _coordinator(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        main()
