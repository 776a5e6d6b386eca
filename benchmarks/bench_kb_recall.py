"""Knowledge base retrieval on a labelled set: recall@3, MRR, what reaches the planner, speed.

The set (``benchmarks/kb_recall_set.json``, written by hand) holds 40 past runs across
topics with near neighbours and 25 queries worded differently from the past goals, each
labelled with the runs a planner should be shown (none for 3 of them). Every run is indexed
into a fresh knowledge base (real SQLite FTS5, BM25); each query is searched as a goal.

Printed:

- recall@3: per query with relevant runs, the share of them among the top 3, averaged;
- MRR: 1/rank of the first relevant run in the top 10 (0 when absent), averaged;
- planner context: how often the block the planner would get (``planner_context``, with
  its two-shared-words rule and the default budget) holds a relevant run, and how many
  unrelated runs it shows;
- ``--scale N``: search time with N indexed outputs (synthetic runs added to the set).

No asserts: figures only. Run: ``.venv/bin/python benchmarks/bench_kb_recall.py [--show]
[--scale 10000]``
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agentic_orchestration.knowledge import KnowledgeBase, planner_context  # noqa: E402

SET = Path(__file__).resolve().parent / "kb_recall_set.json"


def as_record(run: dict) -> dict:
    steps = [{"step_id": f"step_{i}", "agent_provider_id": "bench", "result_text": text,
              "status": "ok", "exit_code": 0} for i, text in enumerate(run["steps"], 1)]
    return {"schema_version": "0.1", "session_id": run["run_id"], "run_id": run["run_id"],
            "created_at": "2026-01-01T00:00:00+00:00", "goal": run["goal"], "status": "ok",
            "steps": steps, "result_text": run["steps"][-1]}


def synthetic_runs(n_outputs: int, vocabulary: list[str], seed: int = 7) -> list[dict]:
    """Runs of two outputs each, made of words from the set (so they compete in BM25)."""
    rng = random.Random(seed)
    runs = []
    for n in range(n_outputs // 2):
        words = lambda k: " ".join(rng.choice(vocabulary) for _ in range(k))  # noqa: E731
        runs.append({"run_id": f"synthetic-{n:05d}", "goal": words(6),
                     "steps": [words(60), words(40)]})
    return runs


def evaluate(kb: KnowledgeBase, queries: list[dict], *, show: bool) -> None:
    recalls, reciprocal, shown_relevant, shown_unrelated, with_relevant = [], [], 0, 0, 0
    for query in queries:
        relevant = set(query["relevant"])
        ranked = [hit.run_id for hit in kb.search(query["text"], k=10)]
        context = planner_context(query["text"], kb=kb)
        shown_unrelated += len([r for r in context.run_ids if r not in relevant])
        if relevant:
            with_relevant += 1
            top3 = set(ranked[:3])
            recalls.append(len(relevant & top3) / min(3, len(relevant)))
            first = next((i for i, r in enumerate(ranked, 1) if r in relevant), None)
            reciprocal.append(1 / first if first else 0.0)
            shown_relevant += bool(relevant & set(context.run_ids))
        if show:
            print(f"  {query['text'][:60]:60}  top3={ranked[:3]}  context={context.run_ids}")
    print(f"queries: {len(queries)} ({with_relevant} with relevant runs)")
    print(f"recall@3: {statistics.mean(recalls):.3f}")
    print(f"MRR@10:   {statistics.mean(reciprocal):.3f}")
    print(f"planner context holds a relevant run: {shown_relevant}/{with_relevant} queries; "
          f"unrelated runs shown: {shown_unrelated} over {len(queries)} queries")


def time_searches(kb: KnowledgeBase, queries: list[dict]) -> None:
    seconds = []
    for query in queries * 4:
        began = time.perf_counter()
        kb.search(query["text"], k=3)
        seconds.append(time.perf_counter() - began)
    seconds.sort()
    print(f"search time over {len(seconds)} searches: median "
          f"{statistics.median(seconds) * 1000:.1f} ms, p95 "
          f"{seconds[int(len(seconds) * 0.95) - 1] * 1000:.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show", action="store_true", help="print each query's ranking")
    parser.add_argument("--scale", type=int, default=0, metavar="N",
                        help="also time searches with N indexed outputs")
    args = parser.parse_args()
    data = json.loads(SET.read_text())
    with tempfile.TemporaryDirectory() as folder:
        kb = KnowledgeBase(Path(folder) / "knowledge.sqlite3")
        began = time.perf_counter()
        kb.index_runs(as_record(run) for run in data["runs"])
        runs, docs = kb.count()
        print(f"indexed {runs} runs ({docs} outputs) in "
              f"{(time.perf_counter() - began) * 1000:.0f} ms")
        evaluate(kb, data["queries"], show=args.show)
        time_searches(kb, data["queries"])
        if args.scale:
            vocabulary = sorted({w for run in data["runs"] for t in run["steps"]
                                 for w in t.lower().split() if w.isalpha()})
            began = time.perf_counter()
            kb.index_runs(as_record(run) for run in synthetic_runs(args.scale - docs,
                                                                   vocabulary))
            runs, docs = kb.count()
            print(f"scaled to {runs} runs ({docs} outputs) in "
                  f"{time.perf_counter() - began:.1f} s")
            evaluate(kb, data["queries"], show=False)
            time_searches(kb, data["queries"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
