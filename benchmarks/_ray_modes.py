"""The Ray half of ``bench_vs_ray.py``, and the process readings both halves share.

Kept apart so the benchmark itself stays about our own modes: the Ray task, the launcher
that runs a step as a Ray task (in a reused worker, or ``max_calls=1``: a new worker per
task), the Ray venv (Ray is never a dependency of the project), and the memory readings of
a coordinator's processes, ours or Ray's. Imported from the benchmark's folder (it is the
script's ``sys.path[0]``); Ray's workers find it through the ``PYTHONPATH`` given to them.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RAY_VENV = Path.home() / ".cache" / "agentic-orchestration" / "bench-ray-venv"


def _ray_step(spec_path: str, run_id: str, step_id: str) -> int:
    from agentic_orchestration.orchestration.execute_step import execute_step_main

    return execute_step_main(spec_path, run_id=run_id, step_id=step_id)


def ray_launcher(max_calls: int, env_vars: dict[str, str]):
    """A StepLauncher running each step as a Ray task (``max_calls``: 0 reuses workers)."""
    import ray

    from agentic_orchestration.orchestration.backends.launcher import (
        StepExit,
        StepHandle,
        StepLauncher,
    )

    class RayHandle(StepHandle):
        def __init__(self, ref) -> None:
            self.ref_obj, self.ref, self.exit = ref, ref.hex()[:12], None

        def wait(self, timeout):
            if self.exit is None:
                if not ray.wait([self.ref_obj], timeout=timeout)[0]:
                    return None
                try:
                    self.exit = StepExit("exited", exit_code=ray.get(self.ref_obj))
                except Exception as exc:
                    self.exit = StepExit("lost", detail=f"{type(exc).__name__}: {exc}")
            return self.exit

        def terminate(self) -> None:
            if self.exit is None:
                ray.cancel(self.ref_obj, force=True)

    class RayLauncher(StepLauncher):
        name = "ray"

        def __init__(self) -> None:
            options = {"max_calls": max_calls} if max_calls else {}
            self.task = ray.remote(num_cpus=1, **options)(_ray_step)

        def launch(self, spec, *, spec_path, log_path):
            return RayHandle(self.task.remote(str(spec_path), spec.run_id, spec.step_id))

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {**env_vars,
                                          "PYTHONPATH": f"{REPO}:{REPO / 'benchmarks'}"}})
    return RayLauncher()


def ensure_ray_venv() -> Path:
    """The Ray venv's python: Ray 2.60 plus a .pth naming this checkout and its venv."""
    python = RAY_VENV / "bin" / "python"
    if not python.exists():
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(RAY_VENV)], check=True)
    probe = subprocess.run([str(python), "-c", "import ray; print(ray.__version__)"],
                           capture_output=True, text=True)
    if probe.stdout.strip() != "2.60.0":
        subprocess.run([str(python), "-m", "pip", "install", "-q", "ray==2.60.0"], check=True)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], capture_output=True, text=True, check=True)
    ours = subprocess.run([sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], capture_output=True, text=True, check=True)
    # After Ray's own site-packages: Ray's dependencies win where both have one.
    (Path(site.stdout.strip()) / "agentic_orchestration_bench.pth").write_text(
        f"{REPO}\n{ours.stdout.strip()}\n")
    return python


# -- processes and their memory ------------------------------------------------------------

def memory_of(pid: int) -> dict[str, float]:
    """RSS and PSS (MB) of ``pid`` (PSS splits shared pages among their users)."""
    out = {"rss": 0.0, "pss": 0.0}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("Rss", "Pss"):
                out[key.lower()] = int(rest.split()[0]) / 1024
    except OSError:
        pass
    return out


def _stat_fields(pid: int | str) -> list[str]:
    """``/proc/PID/stat`` after the command name (which may hold spaces): field 0 is the
    state, 1 the parent pid, 11-14 utime, stime, cutime, cstime in clock ticks."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(zygote: int | None) -> float:
    """CPU (user + system) this process and the children it reaped (cold workers) used so
    far, plus the warm zygote's and every child it reaped (its ``cutime``/``cstime``: steps
    and spares, warm-ups included). Ray's processes are not counted (not reaped here)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    if zygote:
        try:
            ticks = sum(int(x) for x in _stat_fields(zygote)[11:15])
            total += ticks / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass
    return total


def descendants(pid: int) -> list[tuple[int, str]]:
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                ppid = int(_stat_fields(proc.name)[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(proc.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        try:
            name = Path(f"/proc/{child}/comm").read_text().strip()
        except OSError:
            continue
        found.append((child, name))
        todo += children.get(child, [])
    return found
