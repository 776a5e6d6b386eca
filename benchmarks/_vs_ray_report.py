"""The report of ``bench_vs_ray.py``: pooling of repeated runs, the table, the breakdown of
a warm step's critical path, memory. Kept apart so the benchmark itself is what is run.

``MODES`` and ``STEPS`` come from the benchmark (``configure``), so both agree on them.
"""

from __future__ import annotations

import statistics

MODES: dict[str, tuple[str, dict]] = {}
STEPS = 5


def configure(modes: dict[str, tuple[str, dict]], steps: int) -> None:
    """Called by the benchmark at import: one definition of the modes and the plan size."""
    global STEPS
    MODES.update(modes)
    STEPS = steps


def merge(runs: list[dict]) -> dict:
    """``--repeat``: one mode's runs as one (the first round of the first run stays apart;
    every run's steady rounds and steady steps pooled; memory from the last run)."""
    first, last = runs[0], runs[-1]
    merged = {**last, "overhead": first["overhead"][:1], "busy": first["busy"][:1],
              "marks": first["marks"][:STEPS],
              "load": [min(r["load"][0] for r in runs), max(r["load"][1] for r in runs)],
              "repeat_medians": [statistics.median(r["overhead"][1:]) for r in runs],
              "step_maxrss": [], "cpus": []}
    for run in runs:
        merged["cpus"] += run.get("cpus", [])[1:]  # a --before checkout may not report it
        merged["overhead"] += run["overhead"][1:]
        merged["busy"] += run["busy"][1:]
        merged["marks"] += run["marks"][STEPS:]
        merged["step_maxrss"] += run["step_maxrss"]
    return merged


BEFORE = " (before)"


def kind_of(mode: str) -> str:
    return MODES[mode.removesuffix(BEFORE)][0]


PHASES = (  # (label, from mark, to mark)
    ("coordinator before launch: spec write, hooks, clear", "start", "launch"),
    ("launch -> the child has its spec (zygote hop; fork)", "launch", "spec_received"),
    ("child: log, logging set-up, spec read + validation", "spec_received", "spec_loaded"),
    ("child: catalog + crew build", "spec_loaded", "built"),
    ("child: kickoff incl. first-kickoff work, - LLM time", "built", "kickoff_done"),
    ("child: result.json write", "kickoff_done", "result_written"),
    ("child done -> coordinator notices the exit", "result_written", "noticed"),
    ("coordinator after exit: sweep, log mask, records", "noticed", "end"),
)


def _steady(data: dict) -> list[dict]:
    return [m for m in data["marks"][STEPS:] if "end" in m and "start" in m]


def _breakdown(results: dict[str, dict]) -> None:
    warm = [mode for mode in results if kind_of(mode) == "warm"]
    if not warm:
        return
    print("\nwhere a warm step's time goes (median ms over the steady-state steps; "
          "LLM time subtracted from the kickoff):")
    print(f"  {'phase':<55}" + "".join(f"{mode:>22}" for mode in warm))
    for label, first, last in PHASES:
        row = []
        for mode in warm:
            server = statistics.median(results[mode]["busy"][1:]) / STEPS * 1000
            values = [(m[last] - m[first]) * 1000 for m in _steady(results[mode])
                      if first in m and last in m]
            value = statistics.median(values) if values else float("nan")
            row.append(value - (server if last == "kickoff_done" else 0.0))
        print(f"  {label:<55}" + "".join(f"{v:>22.1f}" for v in row))
    for label, key in (("child: CPU of the step, all threads (not wall time)", "cpu_ms"),
                       ("child: page faults during the step (count)", "page_faults")):
        values = [[m[key] for m in _steady(results[mode]) if key in m] for mode in warm]
        print(f"  {label:<55}" + "".join(f"{statistics.median(v) if v else float('nan'):>22.1f}"
                                         for v in values))
    for label, key in (("  of which fork -> child running (forked on request)", "fork"),
                       ("critical path of one step, start to end, - LLM", "total"),
                       ("per-step share of per-run work (specs, run.json)", "run")):
        row = []
        for mode in warm:
            steady = _steady(results[mode])
            server = statistics.median(results[mode]["busy"][1:]) / STEPS * 1000
            totals = [(m["end"] - m["start"]) * 1000 - server for m in steady]
            if key == "fork":
                forks = [(m["child_started"] - m["zygote_fork"]) * 1000 for m in steady
                         if m.get("zygote_fork", 0) > m["launch"]]
                row.append(statistics.median(forks) if forks else 0.0)
            elif key == "total":
                row.append(statistics.median(totals))
            else:
                row.append(statistics.median(results[mode]["overhead"][1:])
                           - statistics.median(totals))
        print(f"  {label:<55}" + "".join(f"{v:>22.1f}" for v in row))


def report(results: dict[str, dict], llm_ms: float) -> None:
    print(f"\n{STEPS}-step plan, scripted LLM ({llm_ms:g} ms per reply), overhead = wall - "
          "time in the LLM server, per step")
    print(f"{'mode':<22}{'rounds':>7}{'1st round':>11}{'steady med':>12}{'min-max':>15}"
          f"{'x inproc':>10}{'- inproc':>10}{'CPU/step':>10}{'load':>11}")
    for mode, data in results.items():
        steady = data["overhead"][1:]
        med = statistics.median(steady)
        if mode.endswith(BEFORE) and "inprocess" + BEFORE in results:
            base = statistics.median(results["inprocess" + BEFORE]["overhead"][1:])
        else:
            base = statistics.median(results["inprocess"]["overhead"][1:])
        repeats = data.get("repeat_medians", [])
        cpu = (f"{statistics.median(data['cpus']) / STEPS * 1000:>8.0f}ms"
               if data["cpus"] and kind_of(mode) != "ray" else f"{'-':>10}")
        print(f"{mode:<22}{len(data['overhead']):>7}{data['overhead'][0]:>9.0f}ms"
              f"{med:>10.1f}ms{min(steady):>7.0f}-{max(steady):<6.0f}{med / base:>9.2f}x"
              f"{med - base:>+8.0f}ms{cpu}{data['load'][0]:>6.1f}/{data['load'][1]:<4.1f}"
              + ("  runs: " + " ".join(f"{r:.0f}" for r in repeats) if len(repeats) > 1
                 else ""))
    print("CPU/step: user + system of the coordinator and every process it started (steps, "
          "spares and their warm-ups, cold workers), per step; not counted for Ray")
    _breakdown(results)
    print("\nmemory at the end of the last round (MB; PSS counts pages shared with the zygote "
          "once):")
    for mode, data in results.items():
        coord = data["memory"].pop("coordinator")
        print(f"  {mode}: coordinator RSS {coord['rss']:.0f}")
        data["memory"] = {k: v for k, v in data["memory"].items() if v["rss"]}  # exiting
        for name, mem in sorted(data["memory"].items()):
            print(f"      {name:<28} RSS {mem['rss']:>6.0f}  PSS {mem['pss']:>6.0f}")
        if data["memory"]:
            rss = sum(m["rss"] for m in data["memory"].values())
            pss = sum(m["pss"] for m in data["memory"].values())
            print(f"      {'all its processes':<28} RSS {rss:>6.0f}  PSS {pss:>6.0f}")
        if data["step_maxrss"]:
            peak = statistics.median(data["step_maxrss"])
            print(f"      step child peak RSS (median) {peak:.0f}")
        if data.get("children_maxrss"):
            print(f"      largest worker peak RSS {data['children_maxrss']:.0f}")
